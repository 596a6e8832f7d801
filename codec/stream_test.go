package codec

import (
	"math"
	"testing"
)

func TestStreamNext(t *testing.T) {
	t.Parallel()
	// Short constructors for headers as a server receives them (masked).
	f := func(fin bool, op OpCode, n int64) Header {
		return Header{Fin: fin, OpCode: op, Length: n, Masked: true}
	}
	rsv := func(h Header, b byte) Header { h.Rsv = b; return h }
	unmasked := func(h Header) Header { h.Masked = false; return h }
	server := &Rules{Server: true}
	deflate := &Rules{Server: true, Rsv: Rsv1}
	limits := &Rules{Server: true, MaxFrameSize: 100, MaxMessageSize: 250}

	type step struct {
		h   Header
		err error
		// state after the step
		op   OpCode
		open bool
		comp bool
		size int64
	}
	tests := []struct {
		name  string
		rules *Rules
		steps []step
	}{
		{"single text", server, []step{{h: f(true, OpText, 5), op: OpText, size: 5}}},
		{"single binary then text", server, []step{
			{h: f(true, OpBinary, 5), op: OpBinary, size: 5},
			{h: f(true, OpText, 7), op: OpText, size: 7},
		}},
		{"fragmented with control frames between", server, []step{
			{h: f(false, OpText, 3), op: OpText, open: true, size: 3},
			{h: f(true, OpPing, 5), op: OpText, open: true, size: 3},
			{h: f(false, OpContinuation, 0), op: OpText, open: true, size: 3},
			{h: f(true, OpPong, 0), op: OpText, open: true, size: 3},
			{h: f(true, OpContinuation, 2), op: OpText, size: 5},
			{h: f(true, OpBinary, 1), op: OpBinary, size: 1},
		}},
		{"close inside fragmented message", server, []step{
			{h: f(false, OpBinary, 3), op: OpBinary, open: true, size: 3},
			{h: f(true, OpClose, 2), op: OpBinary, open: true, size: 3},
		}},
		// RFC 6455 §5.4: sequence rules.
		{"continuation first", server, []step{{h: f(true, OpContinuation, 1), err: ErrUnexpectedContinuation}}},
		{"continuation after final", server, []step{
			{h: f(true, OpText, 1), op: OpText, size: 1},
			{h: f(false, OpContinuation, 1), err: ErrUnexpectedContinuation, op: OpText, size: 1},
		}},
		{"text inside fragmented", server, []step{
			{h: f(false, OpText, 1), op: OpText, open: true, size: 1},
			{h: f(true, OpText, 1), err: ErrContinuationExpected, op: OpText, open: true, size: 1},
			{h: f(true, OpBinary, 1), err: ErrContinuationExpected, op: OpText, open: true, size: 1},
			{h: f(true, OpContinuation, 1), op: OpText, size: 2},
		}},
		{"reserved opcode", server, []step{{h: f(true, 0x3, 0), err: ErrReservedOpcode}}},
		// RFC 6455 §5.1: masking.
		{"server: unmasked", server, []step{{h: unmasked(f(true, OpText, 1)), err: ErrMaskRequired}}},
		{"server: unmasked ping", server, []step{{h: unmasked(f(true, OpPing, 1)), err: ErrMaskRequired}}},
		{"nil rules is client: masked", nil, []step{{h: f(true, OpText, 1), err: ErrMaskForbidden}}},
		{"client: unmasked", &Rules{}, []step{{h: unmasked(f(true, OpText, 1)), op: OpText, size: 1}}},
		{"client: masked", &Rules{}, []step{{h: f(true, OpText, 1), err: ErrMaskForbidden}}},
		// RFC 6455 §5.2 and RFC 7692 §6.1: RSV bits.
		{"rsv1 without extension", server, []step{{h: rsv(f(true, OpText, 1), Rsv1), err: ErrReservedBits}}},
		{"rsv2 without extension", server, []step{{h: rsv(f(true, OpText, 1), Rsv2), err: ErrReservedBits}}},
		{"rsv3 on ping without extension", server, []step{{h: rsv(f(true, OpPing, 1), Rsv3), err: ErrReservedBits}}},
		{"rsv2 with deflate", deflate, []step{{h: rsv(f(true, OpText, 1), Rsv2), err: ErrReservedBits}}},
		{"rsv1 with deflate", deflate, []step{
			{h: rsv(f(true, OpText, 1), Rsv1), op: OpText, comp: true, size: 1},
			{h: f(true, OpText, 1), op: OpText, size: 1},
		}},
		{"rsv1 on first fragment", deflate, []step{
			{h: rsv(f(false, OpBinary, 1), Rsv1), op: OpBinary, comp: true, open: true, size: 1},
			{h: f(true, OpPing, 0), op: OpBinary, comp: true, open: true, size: 1},
			{h: f(true, OpContinuation, 1), op: OpBinary, comp: true, size: 2},
		}},
		{"rsv1 on continuation", deflate, []step{
			{h: f(false, OpBinary, 1), op: OpBinary, open: true, size: 1},
			{h: rsv(f(true, OpContinuation, 1), Rsv1), err: ErrMisplacedRsv, op: OpBinary, open: true, size: 1},
		}},
		{"rsv1 on ping", deflate, []step{{h: rsv(f(true, OpPing, 1), Rsv1), err: ErrMisplacedRsv}}},
		{"rsv1 on close", deflate, []step{{h: rsv(f(true, OpClose, 2), Rsv1), err: ErrMisplacedRsv}}},
		// RFC 6455 §10.4: size limits, from the header alone.
		{"frame at limit", limits, []step{{h: f(true, OpBinary, 100), op: OpBinary, size: 100}}},
		{"frame over limit", limits, []step{{h: f(true, OpBinary, 101), err: ErrFrameTooLarge}}},
		{"huge frame over limit", limits, []step{{h: f(true, OpBinary, math.MaxInt64), err: ErrFrameTooLarge}}},
		{"control frame over limit", &Rules{Server: true, MaxFrameSize: 10}, []step{{h: f(true, OpPing, 11), err: ErrFrameTooLarge}}},
		{"message at limit", limits, []step{
			{h: f(false, OpText, 100), op: OpText, open: true, size: 100},
			{h: f(false, OpContinuation, 100), op: OpText, open: true, size: 200},
			{h: f(true, OpContinuation, 50), op: OpText, size: 250},
			{h: f(true, OpText, 100), op: OpText, size: 100}, // a new message starts from 0
		}},
		{"message over limit", limits, []step{
			{h: f(false, OpText, 100), op: OpText, open: true, size: 100},
			{h: f(false, OpContinuation, 100), op: OpText, open: true, size: 200},
			{h: f(true, OpPing, 100), op: OpText, open: true, size: 200}, // control frames do not count
			{h: f(true, OpContinuation, 51), err: ErrMessageTooLarge, op: OpText, open: true, size: 200},
		}},
		{"message limit only", &Rules{Server: true, MaxMessageSize: 10}, []step{
			{h: f(true, OpText, 11), err: ErrMessageTooLarge},
		}},
		{"huge frames without limit saturate", server, []step{
			{h: f(false, OpBinary, math.MaxInt64), op: OpBinary, open: true, size: math.MaxInt64},
			{h: f(true, OpContinuation, math.MaxInt64), op: OpBinary, size: math.MaxInt64},
		}},
		{"huge continuation against limit", &Rules{Server: true, MaxMessageSize: math.MaxInt64}, []step{
			{h: f(false, OpBinary, math.MaxInt64-1), op: OpBinary, open: true, size: math.MaxInt64 - 1},
			{h: f(true, OpContinuation, 2), err: ErrMessageTooLarge, op: OpBinary, open: true, size: math.MaxInt64 - 1},
			{h: f(true, OpContinuation, 1), op: OpBinary, size: math.MaxInt64},
		}},
		// Error precedence: 1002 rules before 1009.
		{"mask before size", limits, []step{{h: unmasked(f(true, OpBinary, 1000)), err: ErrMaskRequired}}},
		{"rsv before sequence", server, []step{{h: rsv(f(true, OpContinuation, 1), Rsv1), err: ErrReservedBits}}},
		{"sequence before size", limits, []step{{h: f(true, OpContinuation, 1000), err: ErrUnexpectedContinuation}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s Stream
			for i, st := range tt.steps {
				if err := s.Next(st.h, tt.rules); err != st.err {
					t.Fatalf("step %d: Next(%+v) = %v; want %v", i, st.h, err, st.err)
				}
				if s.Op() != st.op || s.InMessage() != st.open || s.Compressed() != st.comp || s.Size() != st.size {
					t.Fatalf("step %d: Op %v InMessage %v Compressed %v Size %d; want %v %v %v %d",
						i, s.Op(), s.InMessage(), s.Compressed(), s.Size(), st.op, st.open, st.comp, st.size)
				}
			}
			s.Reset()
			if s != (Stream{}) {
				t.Errorf("Reset left %+v", s)
			}
		})
	}
}

func TestStreamRulesNotModified(t *testing.T) {
	t.Parallel()
	r := Rules{Server: true, Rsv: Rsv1, MaxFrameSize: 10, MaxMessageSize: 20}
	want := r
	var s Stream
	_ = s.Next(Header{Masked: true, OpCode: OpText, Length: 5}, &r)
	_ = s.Next(Header{Masked: true, OpCode: OpContinuation, Length: 50}, &r)
	if r != want {
		t.Errorf("Rules changed to %+v", r)
	}
}

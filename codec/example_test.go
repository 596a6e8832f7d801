package codec_test

import (
	"errors"
	"fmt"

	"github.com/wsgate/wsgate/codec"
)

// A server reads the masked "Hello" frame of RFC 6455 §5.7.
func ExampleParseHeader() {
	wire := []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}

	h, n, err := codec.ParseHeader(wire[:3])
	fmt.Println(n, err) // too short: wait for more bytes

	h, n, err = codec.ParseHeader(wire)
	if err != nil {
		panic(err)
	}
	payload := wire[n : n+int(h.Length)]
	codec.Mask(payload, h.Mask, 0)
	fmt.Println(h.OpCode, h.Fin, h.Length, string(payload))
	// Output:
	// 0 <nil>
	// OpText true 5 Hello
}

// A payload that arrives in pieces is unmasked piece by piece, carrying the
// mask phase.
func ExampleMask() {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	payload := []byte{0x7f, 0x9f, 0x4d, 0x51, 0x58}
	pos := 0
	pos = codec.Mask(payload[:2], key, pos)
	pos = codec.Mask(payload[2:], key, pos)
	fmt.Println(string(payload), pos)
	// Output: Hello 1
}

func ExampleAppendFrame() {
	buf := make([]byte, 0, 64)
	buf = codec.AppendFrame(buf, codec.Header{Fin: true, OpCode: codec.OpText}, []byte("Hello"))
	fmt.Printf("% x\n", buf)
	buf = codec.AppendFrame(buf[:0], codec.Header{Fin: true, OpCode: codec.OpText, Masked: true, Mask: [4]byte{0x37, 0xfa, 0x21, 0x3d}}, []byte("Hello"))
	fmt.Printf("% x\n", buf)
	// Output:
	// 81 05 48 65 6c 6c 6f
	// 81 85 37 fa 21 3d 7f 9f 4d 51 58
}

// Stream checks a sequence of headers: here a fragmented text message with
// a ping between its fragments, then a stray continuation frame.
func ExampleStream_Next() {
	rules := codec.Rules{Server: true, MaxMessageSize: 1 << 20}
	var s codec.Stream
	for _, h := range []codec.Header{
		{OpCode: codec.OpText, Masked: true, Length: 3},
		{Fin: true, OpCode: codec.OpPing, Masked: true},
		{Fin: true, OpCode: codec.OpContinuation, Masked: true, Length: 2},
		{Fin: true, OpCode: codec.OpContinuation, Masked: true, Length: 2},
	} {
		err := s.Next(h, &rules)
		code, _ := codec.CloseStatus(err)
		fmt.Println(h.OpCode, s.Op(), s.InMessage(), err, code)
	}
	// Output:
	// OpText OpText true <nil> StatusCode(0)
	// OpPing OpText true <nil> StatusCode(0)
	// OpContinuation OpText false <nil> StatusCode(0)
	// OpContinuation OpText false codec: continuation frame without a message to continue StatusProtocolError
}

// UTF8 keeps its state across pieces: "€" is split between two fragments,
// and an invalid byte is reported as soon as it arrives.
func ExampleUTF8() {
	var v codec.UTF8
	fmt.Println(v.Write([]byte("price: \xe2\x82")), v.Complete())
	fmt.Println(v.Write([]byte("\xac")), v.Complete())
	v.Reset()
	fmt.Println(v.Write([]byte("bad: \xed\xa0")), v.Complete()) // a surrogate
	// Output:
	// true false
	// true true
	// false false
}

func ExampleParseClose() {
	code, reason, err := codec.ParseClose([]byte("\x03\xe9bye"))
	fmt.Println(code, string(reason), err)
	_, _, err = codec.ParseClose([]byte("\x03\xee")) // 1006 never goes on the wire
	code, _ = codec.CloseStatus(err)
	fmt.Println(err, code)
	// Output:
	// StatusGoingAway bye <nil>
	// codec: invalid close status code StatusProtocolError
}

func ExampleAppendClose() {
	var buf [codec.MaxControlPayload]byte
	fmt.Printf("[% x]\n", codec.AppendClose(buf[:0], codec.StatusNormalClosure, "done"))
	fmt.Printf("[% x]\n", codec.AppendClose(buf[:0], codec.StatusNoStatusRcvd, "ignored"))
	fmt.Printf("[% x]\n", codec.AppendClose(buf[:0], codec.StatusAbnormalClosure, "")) // not for the wire
	// Output:
	// [03 e8 64 6f 6e 65]
	// []
	// [03 f3]
}

func ExampleCloseStatus() {
	err := fmt.Errorf("conn 42: %w", codec.ErrMessageTooLarge)
	code, ok := codec.CloseStatus(err)
	fmt.Println(code, ok, errors.Is(err, codec.ErrMessageTooLarge))
	code, ok = codec.CloseStatus(errors.New("disk full"))
	fmt.Println(code, ok)
	// Output:
	// StatusMessageTooBig true true
	// StatusCode(0) false
}

package codec

import "strconv"

// OpCode is the 4-bit opcode of a frame (RFC 6455 §5.2).
type OpCode byte

// Opcodes defined by RFC 6455 §5.2. 0x3–0x7 and 0xB–0xF are reserved.
const (
	OpContinuation OpCode = 0x0
	OpText         OpCode = 0x1
	OpBinary       OpCode = 0x2
	OpClose        OpCode = 0x8
	OpPing         OpCode = 0x9
	OpPong         OpCode = 0xA
)

// IsControl reports whether o is a control opcode (the high bit of the
// opcode is set, RFC 6455 §5.5), reserved control opcodes included.
func (o OpCode) IsControl() bool { return o&0x8 != 0 }

// IsData reports whether o is a data opcode: continuation, text, binary or a
// reserved non-control opcode (RFC 6455 §5.6).
func (o OpCode) IsData() bool { return o&0x8 == 0 }

// IsReserved reports whether o is one of the reserved opcodes 0x3–0x7 and
// 0xB–0xF, or does not fit in 4 bits.
func (o OpCode) IsReserved() bool {
	switch o {
	case OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong:
		return false
	}
	return true
}

// String returns the Go name of a defined opcode ("OpText") and
// "OpCode(n)" for the others.
func (o OpCode) String() string {
	switch o {
	case OpContinuation:
		return "OpContinuation"
	case OpText:
		return "OpText"
	case OpBinary:
		return "OpBinary"
	case OpClose:
		return "OpClose"
	case OpPing:
		return "OpPing"
	case OpPong:
		return "OpPong"
	}
	return "OpCode(" + strconv.Itoa(int(o)) + ")"
}

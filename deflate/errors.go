package deflate

import "errors"

// Error is an input the peer should not have sent, with the RFC 6455 close
// status code to answer it with. The package returns the preallocated Err…
// values below, which compare with == and errors.Is; the event loop maps
// them to a close frame through CloseCode. (The code is a plain uint16
// because this package imports nothing of wsgate.)
type Error struct {
	Code uint16 // the status code of the close frame to send
	msg  string
}

// Error returns the message, which starts with "deflate: ".
func (e Error) Error() string { return e.msg }

// CloseCode returns the close code to answer the error with.
func (e Error) CloseCode() uint16 { return e.Code }

// The sentinels are declared as error values so that returning one does not
// allocate.
var (
	// ErrTooLarge is returned by AppendDecompress when the decompressed
	// message would exceed the limit. Inflating stops as soon as one byte
	// more than the limit has been produced, so a decompression bomb costs
	// at most limit+1 bytes of output and the work to produce them.
	// RFC 6455 §7.4.1: 1009 "a message that is too big for it to process".
	ErrTooLarge error = Error{1009, "deflate: decompressed message larger than the limit"}

	// ErrCorrupt is returned by AppendDecompress when the payload of a
	// message with RSV1 set is not valid DEFLATE data (a bad block type,
	// a bad Huffman table, a distance beyond the window, a truncated
	// block, …).
	//
	// The close code is 1007, not 1002. RFC 6455 §7.4.1 defines 1002 for
	// "a protocol error" and 1007 for "data within a message that was not
	// consistent with the type of the message (e.g., non-UTF-8 data within
	// a text message)". A compressed message whose DEFLATE data is broken
	// has valid framing: RSV1 was negotiated and sits on the first frame,
	// lengths and masks are right, so the WebSocket protocol itself was
	// followed. What is wrong is the content of the payload, which RFC 7692
	// §6 declares to be DEFLATE data by the RSV1 bit, exactly as the opcode
	// declares a text payload to be UTF-8. RFC 7692 names no code for a
	// decompression failure, so the nearest RFC 6455 code is the one for
	// payload data inconsistent with its declared type: 1007. (The RSV1
	// misuse cases of RFC 7692 §6.1, RSV1 on a control or continuation frame
	// or without the extension, are framing errors and get 1002 from codec.)
	ErrCorrupt error = Error{1007, "deflate: invalid compressed data"}
)

// Configuration errors, returned by Config.Validate and NewCompressor.
var (
	errLevel       = errors.New("deflate: Level must be 0 (default) or 1–9")
	errHistoryBits = errors.New("deflate: HistoryBits must be 0 (default) or 8–15")
	errHistoryIdle = errors.New("deflate: HistoryIdle must not be negative")
	errClientBits  = errors.New("deflate: ClientMaxWindowBits must be 0 (default) or 8–15")
)

// ErrRatio is returned by AppendDecompressLimit when the decompressed
// message would exceed its Limit's ratio bound: more than Limit.Ratio times
// its compressed size (and more than Limit.Floor). Like ErrTooLarge, it
// stops inflating at the bound. RFC 6455 §7.4.1: 1009 "a message that is
// too big for it to process".
var ErrRatio error = Error{1009, "deflate: decompressed message larger than its ratio limit allows"}

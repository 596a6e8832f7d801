package loop

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockQueueOf reads the kernel's send queue of socket fd (TCP_INFO). It
// reports false if it cannot. The TCPInfo stays on the stack: this runs
// at flushes of conflating connections, which must not allocate.
func sockQueueOf(fd int) (sockQueue, bool) {
	var ti unix.TCPInfo
	n := uint32(unsafe.Sizeof(ti))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_INFO,
		uintptr(unsafe.Pointer(&ti)), uintptr(unsafe.Pointer(&n)), 0)
	// Bytes_sent and Bytes_retrans, the last fields read, came with
	// Linux 4.19: an older kernel's shorter answer lacks them.
	if e != 0 || n < uint32(unsafe.Offsetof(ti.Bytes_retrans)+unsafe.Sizeof(ti.Bytes_retrans)) {
		return sockQueue{}, false
	}
	// Bytes sent count retransmissions again; acked bytes count the SYN.
	unacked := int64(ti.Bytes_sent) - int64(ti.Bytes_retrans) - int64(ti.Bytes_acked)
	return sockQueue{unsent: int(ti.Notsent_bytes), unacked: int(max(unacked, 0)), acked: ti.Bytes_acked}, true
}

//go:build !linux && !windows

package loop

// sockQueueOf reports false: outside Linux the kernel's send queue is not
// read, and a conflating connection is flushed like any other (without
// the in-flight window).
func sockQueueOf(int) (sockQueue, bool) { return sockQueue{}, false }

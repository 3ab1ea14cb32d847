//go:build linux

package agent

import "syscall"

// kernelRelease is `uname -r`, read with the uname(2) syscall (no exec).
func kernelRelease() string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return ""
	}
	return cString(u.Release[:])
}

// cString converts a NUL-terminated utsname field; its element type is int8
// or uint8 depending on the architecture.
func cString[T ~int8 | ~uint8](b []T) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

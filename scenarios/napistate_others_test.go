//go:build !linux

package scenarios

// napiState is empty outside Linux: there is no NAPI to starve.
func napiState(iface string) string { return "" }

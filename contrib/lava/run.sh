#!/bin/sh
# Runs the txtimeout scenarios under LAVA. The scenarios print one
# <LAVA_SIGNAL_TESTCASE ...> line each (TXTIMEOUT_LAVA=1); this script only
# builds or fetches the test binary, runs it and shows the reports. Its own
# failures (no binary, no report) become a test case of their own,
# "txtimeout-run", so that a broken setup never looks like a pass.
set -u

: "${TXTIMEOUT_RUN:=TxTimeout|Pktgen}"
: "${TXTIMEOUT_REPORT_DIR:=/tmp/txtimeout-report}"
: "${TXTIMEOUT_TIMEOUT:=30m}"
: "${TXTIMEOUT_TEST_BIN:=}"
# In a multinode job the partner role sends its address (lava-send
# partner-ready ip=ADDR mac=MAC, see README.md); the lava-wait before this
# test leaves it in LAVA's multinode cache, lines "SENDER:KEY=VALUE". Job
# parameters win.
cache=/tmp/lava_multi_node_cache.txt
if [ -s "$cache" ]; then
	: "${TXTIMEOUT_PEER_IP:=$(sed -n 's/^[^:=]*:ip=//p' "$cache" | tail -n 1)}"
	: "${TXTIMEOUT_PEER_MAC:=$(sed -n 's/^[^:=]*:mac=//p' "$cache" | tail -n 1)}"
fi
export TXTIMEOUT_LAVA=1 TXTIMEOUT_REPORT_DIR
for v in TXTIMEOUT_IFACE TXTIMEOUT_PEER_IP TXTIMEOUT_PEER_MAC TXTIMEOUT_PARTNER TXTIMEOUT_PARTNER_IFACE; do
	eval "val=\${$v:-}"
	if [ -n "$val" ]; then export "$v"; else unset "$v"; fi
done

# lava-test-case exists inside LAVA; outside it, print the same signal.
result() { # NAME pass|fail|skip
	if command -v lava-test-case >/dev/null 2>&1; then
		lava-test-case "$1" --result "$2"
	else
		echo "<LAVA_SIGNAL_TESTCASE TEST_CASE_ID=$1 RESULT=$2>"
	fi
}

fail_setup() {
	echo "txtimeout: $*" >&2
	result txtimeout-run fail
	exit 0 # the result is in the signal; LAVA goes on with the job
}

top=$(cd "$(dirname "$0")/../.." && pwd) || fail_setup "cannot find the repository root"
bin=/tmp/txtimeout-scenarios.test
case "$TXTIMEOUT_TEST_BIN" in
http://* | https://*)
	command -v curl >/dev/null 2>&1 || fail_setup "curl is needed to fetch $TXTIMEOUT_TEST_BIN"
	curl -fsSL -o "$bin" "$TXTIMEOUT_TEST_BIN" || fail_setup "cannot fetch $TXTIMEOUT_TEST_BIN"
	chmod +x "$bin"
	;;
"")
	PATH=$PATH:/usr/local/go/bin
	command -v go >/dev/null 2>&1 || fail_setup "no Go on the DUT: install Go or set TXTIMEOUT_TEST_BIN to a prebuilt scenarios test binary"
	(cd "$top" && CGO_ENABLED=0 go test -c -o "$bin" ./scenarios) || fail_setup "building the scenarios failed"
	;;
*)
	[ -x "$TXTIMEOUT_TEST_BIN" ] || fail_setup "$TXTIMEOUT_TEST_BIN is not an executable"
	bin=$TXTIMEOUT_TEST_BIN
	;;
esac

rm -rf "$TXTIMEOUT_REPORT_DIR"
mkdir -p "$TXTIMEOUT_REPORT_DIR" || fail_setup "cannot create $TXTIMEOUT_REPORT_DIR"
# Run from the package directory, as go test does, so that testdata is found.
cd "$top/scenarios" 2>/dev/null || cd "$top"
"$bin" -test.v -test.count=1 -test.timeout "$TXTIMEOUT_TIMEOUT" -test.run "$TXTIMEOUT_RUN"
status=$?
echo "txtimeout: scenarios exited with status $status"

if [ ! -s "$TXTIMEOUT_REPORT_DIR/report.json" ]; then
	fail_setup "no report.json in $TXTIMEOUT_REPORT_DIR (the run stopped before any scenario finished)"
fi
echo "===== report.ktap ====="
cat "$TXTIMEOUT_REPORT_DIR/report.ktap"
if command -v lava-test-reference >/dev/null 2>&1 && [ -n "${TXTIMEOUT_REPORT_URL:-}" ]; then
	lava-test-reference txtimeout-report --result pass --reference "$TXTIMEOUT_REPORT_URL"
fi
# go test exits 1 when a scenario failed; the scenario's own signal already
# says so, and a crash of the binary itself (status > 1) is a setup failure.
if [ "$status" -gt 1 ]; then
	result txtimeout-run fail
else
	result txtimeout-run pass
fi
exit 0

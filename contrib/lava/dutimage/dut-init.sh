#!/bin/busybox sh
# /init of the LAVA DUT image (contrib/lava/dutimage). It prepares what
# LAVA's test shell and the scenarios need, cables nothing itself (QEMU's
# hub joins the two NICs: see contrib/lava/job-qemu.yaml) and gives LAVA a
# root shell on the serial console with the prompt the job waits for.
#
# Hardware mode on a loop rig: the DUT port (MAC ...:58) is eth0 with
# 198.18.0.2/24; the partner port (MAC ...:59) is eth1, up without an
# address, and the peer address 198.18.0.1 lives on a macvlan of eth1 in
# the network namespace "partner" (/run/netns/partner, as `ip netns`
# names it). The partner port itself stays in this namespace, where the
# scenarios open it by name to send PAUSE frames (TXTIMEOUT_PARTNER_IFACE);
# the peer address must not be local here, or the DUT's traffic to it
# would never leave the machine.

/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin /run /var /etc /root
/bin/busybox --install -s
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
# The scenarios read the net_dev_xmit_timeout tracepoint. record-cmd off:
# with it on, toggling any trace event patches __schedule, which can lock
# up a multi-threaded TCG guest (kernel-facts.md section 12).
mount -t tracefs tracefs /sys/kernel/tracing && echo 0 >/sys/kernel/tracing/options/record-cmd
mount -t debugfs debugfs /sys/kernel/debug

say() { echo "dut-init: $*"; }

while read -r name params; do
	# shellcheck disable=SC2086 # params are separate words
	insmod "/lib/modules/$name.ko" $params || say "insmod $name $params failed"
done </lib/modules/load-order

# LAVA mounts its overlay disk as /dev/disk/by-uuid/UUID (no udev here):
# link every ext2/3/4 disk by the UUID in its superblock.
mkdir -p /dev/disk/by-uuid
for dev in /sys/block/vd* /sys/block/sd*; do
	[ -e "$dev" ] || continue
	d=/dev/${dev##*/}
	[ "$(od -An -tx1 -j1080 -N2 "$d" | tr -d ' ')" = 53ef ] || continue
	u=$(od -An -tx1 -j1128 -N16 "$d" | tr -d ' \n')
	u=$(echo "$u" | sed 's/^\(.\{8\}\)\(.\{4\}\)\(.\{4\}\)\(.\{4\}\)/\1-\2-\3-\4-/')
	ln -sf "$d" "/dev/disk/by-uuid/$u"
	say "$d is /dev/disk/by-uuid/$u"
done

# The ports, by their MACs: the DUT port 52:54:00:12:34:58 becomes eth0
# with 198.18.0.2/24, the partner port 52:54:00:12:34:59 eth1, up without
# an address. A machine with both is a loop rig; with one, it is one role
# of a multinode job (contrib/lava/job-multinode.yaml), whose partner runs
# `txtimeout partner` on eth1, which answers for the peer address itself.
port() { # MAC -> interface name
	for a in /sys/class/net/*/address; do
		[ "$(cat "$a")" = "$1" ] && { basename "${a%/address}"; return; }
	done
}
# rename IFACE NAME, out of the way of an interface that has NAME already.
rename() {
	[ "$1" = "$2" ] && return
	[ -e "/sys/class/net/$2" ] && ip link set "$2" name "old-$2"
	ip link set "$1" name "$2"
}
# carrier IFACE...: wait until every IFACE has a carrier (e1000e's
# autonegotiation takes a few seconds), 30 s at most; the scenarios start
# from a link that is up.
carrier() {
	n=0
	for i in "$@"; do
		until [ "$(cat "/sys/class/net/$i/carrier")" = 1 ] || [ $n -ge 150 ]; do
			usleep 200000
			n=$((n + 1))
		done
	done
	[ $n -ge 150 ] && say "no carrier on $* after 30 s"
}
# peer: the peer address 198.18.0.1 on a macvlan of eth1 in the network
# namespace "partner".
peer() {
	mkdir -p /run/netns && touch /run/netns/partner
	unshare --net=/run/netns/partner true
	ip link add link eth1 name peer0 address 02:74:78:00:00:01 type macvlan mode bridge
	# busybox's ip link set ... netns takes a PID: a process in the
	# namespace, which says on a FIFO that it is there (nsenter execs sh,
	# so $! is its PID).
	mkfifo /run/netns/.ready
	nsenter --net=/run/netns/partner sh -c 'echo in >/run/netns/.ready; exec sleep 30' &
	holder=$!
	read -r _ </run/netns/.ready
	ip link set peer0 netns "$holder"
	kill "$holder"
	rm -f /run/netns/.ready
	nsenter --net=/run/netns/partner sh -c 'ip link set lo up && ip addr add 198.18.0.1/24 dev peer0 && ip link set peer0 up'
}

ip link set lo up
dut=$(port 52:54:00:12:34:58)
partner=$(port 52:54:00:12:34:59)
[ -n "$dut" ] && rename "$dut" eth0
[ -n "$partner" ] && rename "$(port 52:54:00:12:34:59)" eth1
if [ -n "$dut" ]; then
	ip addr add 198.18.0.2/24 dev eth0
	ip link set eth0 up
fi
[ -n "$partner" ] && ip link set eth1 up
if [ -n "$dut" ] && [ -n "$partner" ]; then
	peer
	carrier eth0 eth1
	say "loop: eth0 198.18.0.2 (DUT) <-> eth1 (partner port), peer 198.18.0.1 02:74:78:00:00:01 on eth1's macvlan in netns partner"
elif [ -n "$dut" ]; then
	carrier eth0
	say "DUT: eth0 198.18.0.2"
elif [ -n "$partner" ]; then
	carrier eth1
	say "partner: eth1, no address"
else
	say "neither the DUT port nor the partner port (MACs 52:54:00:12:34:58 and :59) is here; interfaces: $(ls /sys/class/net)"
fi

# Only emergencies on the console from here on: kernel lines must not
# split the LAVA signal lines the tests print.
dmesg -n 1
export PS1='txtimeout-dut# '
say "ready"
exec setsid cttyhack sh

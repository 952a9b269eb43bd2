#!/bin/busybox sh
# /init of the selftests initramfs ci/mutate boots on each kernel: the kernel's own
# uffd-unit-tests (each sub-test in its own process, so one crash or `err()` exit costs one
# sub-test) and pagemap_ioctl, between MUTSEL markers ci/mutate parses (with the guest's
# uptime, to see what costs the time); then power off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# The serial console is the bottleneck: the poison test's "MCE: Killing" lines alone took
# over 60 s. Only emergencies go to the console; after each test the kernel log's problem
# lines are copied there (ci/mutate looks for them).
dmesg -n 1
klog() { dmesg -c | grep -E 'BUG:|WARNING:|Oops|general protection|Kernel panic|Call Trace' | sed 's/^/MUTSEL klog: /'; }
up() { cut -d' ' -f1 /proc/uptime; }
echo 128 > /proc/sys/vm/nr_hugepages
echo "MUTSEL hugepages $(cat /proc/sys/vm/nr_hugepages)"
# `-f NAME` runs every test whose name contains NAME (strstr): `-f minor` also runs minor-wp
# and minor-collapse. So a test an earlier filter already ran is not run again (it cost a
# third of the time). Under TCG on an idle host poison takes 96 s and minor (with minor-wp
# and minor-collapse) 26 s, but a loaded host makes them several times slower, hence 400 s
# (a filter cut short decides nothing: ci/mutate records it apart, it kills nothing);
# events-wp (run by `-f events`) reports memory corruption on the unmutated kernel and then
# hangs, so that filter gets 120 s (events itself takes well under that).
ran=""
for t in $(/uffd-unit-tests -l); do
	dup=""
	for r in $ran; do
		case "$t" in *"$r"*) dup=1 ;; esac
	done
	[ -n "$dup" ] && continue
	ran="$ran $t"
	echo "MUTSEL begin uffd $t $(up)"
	limit=400
	[ "$t" = events ] && limit=120
	timeout $limit /uffd-unit-tests -f "$t" 2>&1
	rc=$?
	klog
	echo "MUTSEL end uffd $t $rc $(up)"
done
echo "MUTSEL begin pagemap $(up)"
timeout 400 /pagemap_ioctl 2>&1
rc=$?
klog
echo "MUTSEL end pagemap $rc $(up)"
echo "MUTSEL done"
poweroff -f

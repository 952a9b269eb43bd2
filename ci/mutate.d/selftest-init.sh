#!/bin/busybox sh
# /init of the selftests initramfs ci/mutate boots on each kernel: the kernel's own
# uffd-unit-tests (each sub-test in its own process, so one crash or `err()` exit costs one
# sub-test) and pagemap_ioctl, between MUTSEL markers ci/mutate parses; then power off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo 128 > /proc/sys/vm/nr_hugepages
echo "MUTSEL hugepages $(cat /proc/sys/vm/nr_hugepages)"
for t in $(/uffd-unit-tests -l); do
	echo "MUTSEL begin uffd $t"
	timeout 60 /uffd-unit-tests -f "$t" 2>&1
	echo "MUTSEL end uffd $t $?"
done
echo "MUTSEL begin pagemap"
timeout 120 /pagemap_ioctl 2>&1
echo "MUTSEL end pagemap $?"
echo "MUTSEL done"
poweroff -f

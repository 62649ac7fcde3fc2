#!/bin/busybox sh
# PID 1 of the pure cgroup v2 test VM (tests/vm/vmkit.py packs it as /init).
#
# The host's / comes in read-only over 9p (tag "hostroot") and becomes the
# lower layer of an overlay on a tmpfs, so the VM runs the host's very Python,
# site-packages and checkout; a second 9p share (tag "results") is writable.
# cgroup2 is mounted alone at /sys/fs/cgroup (the kernel also gets
# cgroup_no_v1=all), with every controller enabled for the children of the
# root, as on a systemd host. Then /results/job.sh runs in the new root
# (moved over /) with its output in /results/output.log and its exit status
# in /results/rc, and the VM powers off. Progress lines start with
# "dockyard-vm:" on the serial console.
/bin/busybox --install -s /bin
export PATH=/bin

say() { echo "dockyard-vm: $*"; }
off() { sync; poweroff -f; echo o > /proc/sysrq-trigger; sleep 30; }
fail() { say "FAIL: $*"; off; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say "init started"

for m in $(cat /modules.list); do
  insmod "/lib/modules/$m.ko" || fail "insmod $m"
done

# Swap on zram (zeroes compress to nothing): memory.swap.max limits something.
echo 512M > /sys/block/zram0/disksize && mkswap /dev/zram0 >/dev/null && swapon /dev/zram0 \
  || fail "swap on zram"

mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /lower \
  || fail "mount 9p hostroot"
mount -t tmpfs -o mode=755 tmpfs /rw
mkdir /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot \
  || fail "mount overlay root"

R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
# Writable scratch that is a real tmpfs (an overlay upper dir can't live on
# an overlay): the tests' --basetemp, daemon roots and exec roots go here.
# Not over /tmp: the checkout or the Python running the tests may live there.
mkdir -p $R/vmscratch
mount -t tmpfs -o mode=1777 tmpfs $R/vmscratch
mount -t tmpfs -o mode=755 tmpfs $R/run
mkdir -p $R/var/lib/dockyard
mount -t tmpfs -o mode=711 tmpfs $R/var/lib/dockyard
mkdir -p $R/results
mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=512000 results $R/results \
  || fail "mount 9p results"

# Pure cgroup v2: one cgroup2 mount, no v1 hierarchy anywhere.
mount -t cgroup2 -o nsdelegate cgroup2 $R/sys/fs/cgroup || fail "mount cgroup2"
CG=$R/sys/fs/cgroup
for c in cpu cpuset memory pids io; do
  echo "+$c" > $CG/cgroup.subtree_control || fail "enable controller $c"
done
# The new root goes over the initramfs's / (as switch_root does), not just a
# chroot: setns(CLONE_NEWNS) -- docker exec -- puts a process at the root of
# the namespace's mount tree, which is where a container's pivot_root
# attaches its rootfs only when the host's / is mounted right over rootfs.
# This init stays PID 1 and runs the rest with the host's busybox.
cd $R
mount --move . / || fail "move the new root over /"
exec chroot . /bin/busybox sh -c '
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
say() { echo "dockyard-vm: $*"; }
# Like systemd: nothing but the init lives in the root cgroup; the job runs
# in a leaf of its own.
mkdir /sys/fs/cgroup/vmjob && echo $$ > /sys/fs/cgroup/vmjob/cgroup.procs \
  || say "FAIL: move init to /vmjob"
/bin/busybox hostname dockyard-vm
/bin/busybox ip link set lo up 2>/dev/null
say "controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
say "job starting"
/bin/sh -c "exec </dev/null >/results/output.log 2>&1; /bin/sh /results/job.sh"
echo $? > /results/rc.tmp && mv /results/rc.tmp /results/rc
say "job finished: rc=$(cat /results/rc 2>/dev/null)"
sync
/bin/busybox umount /results
/bin/busybox poweroff -f
echo o > /proc/sysrq-trigger
'
fail "exec the second stage"

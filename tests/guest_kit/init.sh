#!/bin/busybox sh
# /init of the vmgroup test guest (busybox + virtio modules of Debian's cloud
# kernel). Every guest powers off when its ACPI power button is pressed (busybox
# acpid, printing POWER-BUTTON first). Workloads are chosen on the kernel command line:
#   writer=raw   stamps "SEQ nnnnnnnn" into sector n of /dev/vda for n = 1, 2, ...
#                with O_DIRECT + fsync each: every record the guest saw
#                acknowledged is on the disk, in order.
#   writer=heavy sustained write load for the pause-window benchmark: 4 MiB of
#                random bytes written to /dev/vda in 1 MiB O_DIRECT writes, then
#                fsync, again and again over 1..13 MiB of the disk, printing
#                "wrote n" every 8 rounds: a guest with large writes in flight
#                and a flush pending at almost any instant.
#   counter=mem  counts in the shell's memory only, printing "count n" about
#                five times a second: after a memory state is loaded the
#                count goes on from where it was, after a reboot from 1.
#   fill=N       first fills N MiB of RAM with random bytes (a file in the RAM-backed root),
#                then prints FILL-DONE: guests whose memory is in use.
#   agent=1      runs qemu-ga on the org.qemu.guest_agent.0 port, then prints AGENT-READY.
#   writer=fs    mounts /dev/vda (an ext4 filesystem the host made) on /mnt and
#                keeps creating, writing and renaming files there, never
#                syncing, printing "wrote n" every 50 files: a filesystem
#                whose journal is always busy.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk virtio_console evdev button; do
  insmod /lib/mod/$m.ko 2>/dev/null
done
# The ACPI power button powers the guest off, as a distribution's acpid
# does: what a clean shutdown (`vmgroup vm stop`, virsh shutdown) asks for.
# (acpid's own stdout is its log: the handler writes to the console.)
mkdir -p /etc/acpi/PWRF
printf '#!/bin/sh\necho POWER-BUTTON >/dev/console\nsync\npoweroff -f\n' > /etc/acpi/PWRF/00000080
chmod +x /etc/acpi/PWRF/00000080
acpid -f -c /etc/acpi -l /dev/null -p /tmp/acpid.pid &
echo "BOOT-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
for arg in $(cat /proc/cmdline); do
  case $arg in
    fill=*) dd if=/dev/urandom of=/fill bs=1M count=${arg#fill=} 2>/dev/null; echo FILL-DONE ;;
  esac
done
case " $(cat /proc/cmdline) " in
  *" agent=1 "*)
    for port in /sys/class/virtio-ports/*; do
      if [ "$(cat "$port/name" 2>/dev/null)" = org.qemu.guest_agent.0 ]; then
        qemu-ga -m virtio-serial -p "/dev/${port##*/}" -t /tmp -f /tmp/qemu-ga.pid -d
        while [ ! -s /tmp/qemu-ga.pid ]; do sleep 0.1; done
        echo AGENT-READY
      fi
    done
    ;;
esac
case " $(cat /proc/cmdline) " in
  *" writer=fs "*)
    mount -t ext4 /dev/vda /mnt || echo "MOUNT-FAILED"
    mkdir -p /mnt/w
    n=0
    while true; do
      n=$((n + 1))
      echo "record $n $(date)" > /mnt/w/new.$n
      mv /mnt/w/new.$n /mnt/w/file.$n
      [ $n -gt 200 ] && rm -f /mnt/w/file.$((n - 200))
      [ $((n % 50)) = 0 ] && echo "wrote $n"
    done
    ;;
  *" writer=raw "*)
    n=0
    while true; do
      n=$((n + 1))
      printf 'SEQ %08d\n' $n | dd of=/dev/vda bs=512 seek=$n count=1 conv=sync,fsync oflag=direct 2>/dev/null
      [ $((n % 50)) = 0 ] && echo "wrote $n"
    done
    ;;
  *" writer=heavy "*)
    dd if=/dev/urandom of=/tmp/block bs=1M count=4 2>/dev/null
    n=0
    while true; do
      n=$((n + 1))
      dd if=/tmp/block of=/dev/vda bs=1M seek=$((1 + n % 3 * 4)) conv=fsync oflag=direct 2>/dev/null
      [ $((n % 8)) = 0 ] && echo "wrote $n"
    done
    ;;
  *" counter=mem "*)
    n=0
    while true; do
      n=$((n + 1))
      echo "count $n"
      sleep 0.2
    done
    ;;
esac
echo SHELL-READY
exec setsid cttyhack sh

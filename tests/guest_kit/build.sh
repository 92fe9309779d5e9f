#!/usr/bin/env bash
# Builds the test guest kit into DIR (default build/guest-kit): DIR/vmlinuz
# (Debian's cloud kernel, downloaded with apt-get, never installed) and
# DIR/initrd.gz (busybox-static, the kernel's virtio modules, qemu-ga with
# the host's copies of its libraries, init.sh).
# Cached: does nothing when the kit in DIR was built from this init.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kit=$(realpath -m "${1:-$here/../../build/guest-kit}")
stamp=$(sha256sum "$here/init.sh" "$here/build.sh" | sha256sum | cut -c1-16)
if [[ -f $kit/vmlinuz && -f $kit/initrd.gz && "$(cat "$kit/stamp" 2>/dev/null)" == "$stamp" ]]; then
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
kernel_pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image/{print $2; exit}')
packages=(busybox-static qemu-guest-agent)
if [[ -z $kernel_pkg ]] || ! apt-get download -qq "${packages[@]}" "$kernel_pkg" 2>/dev/null; then
  apt-get update -qq
  kernel_pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image/{print $2; exit}')
  apt-get download -qq "${packages[@]}" "$kernel_pkg"
fi
dpkg-deb -x busybox-static_*.deb bb
dpkg-deb -x qemu-guest-agent_*.deb qga
dpkg-deb -x linux-image-*.deb kernel

mkdir -p root/{bin,proc,sys,dev,mnt,tmp,lib/mod}
cp bb/bin/busybox root/bin/busybox
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk virtio_console evdev button; do
  ko=$(find kernel/lib/modules -name "$m.ko" -o -name "$m.ko.xz" | head -n 1)
  [[ -n $ko ]] || { echo "guest kit: module $m not found in $kernel_pkg" >&2; exit 1; }
  case $ko in
    *.xz) xz -dc "$ko" > "root/lib/mod/$m.ko" ;;
    *) cp "$ko" "root/lib/mod/$m.ko" ;;
  esac
done
install -m 0755 "$here/init.sh" root/init

# qemu-ga links glib and a few more: the host's copies (the same Debian
# release as the agent) go in at the same paths, with the loader.
install -D -m 0755 qga/usr/sbin/qemu-ga root/bin/qemu-ga
ldd qga/usr/sbin/qemu-ga | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | while read -r lib; do
  [[ -f $lib ]] || { echo "guest kit: qemu-ga needs $lib, missing on this host" >&2; exit 1; }
  install -D -m 0755 "$(realpath "$lib")" "root$lib"
done

mkdir -p "$kit"
(cd root && find . | cpio -o -H newc --quiet | gzip -1) > "$kit/initrd.gz.new"
cp kernel/boot/vmlinuz-* "$kit/vmlinuz.new"
mv "$kit/initrd.gz.new" "$kit/initrd.gz"
mv "$kit/vmlinuz.new" "$kit/vmlinuz"
echo "$stamp" > "$kit/stamp"
echo "guest kit: built $kit from $kernel_pkg" >&2

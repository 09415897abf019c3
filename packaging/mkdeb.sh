#!/bin/sh
# Turn a `make install DESTDIR=ROOT` tree into OUTDIR/pzpgw_VERSION_ARCH.deb
# with dpkg-deb: the binary stripped, documentation and manual pages
# compressed, modes normalised, Depends from dpkg-shlibdeps, the
# maintainer scripts and conffiles of packaging/debian/. Run by `make deb`.
# usage: sh packaging/mkdeb.sh ROOT VERSION OUTDIR
set -eu

root=$1
version=$2
outdir=$3
here=$(cd "$(dirname "$0")" && pwd)
deb=$here/debian
arch=$(dpkg --print-architecture)
doc=$root/usr/share/doc/pzpgw

# Normalised modes: what a build's umask or a checkout left does not
# reach the package.
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -exec chmod 0644 {} +
chmod 0755 "$root/usr/sbin/pzpgw"
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
	"$root/usr/sbin/pzpgw"

install -d "$doc"
install -m 0644 "$deb/copyright" "$doc/copyright"
# What the rule files are made from is documentation: under doc/.
if [ -f "$root/usr/share/pzpgw/schemas/README.md" ]; then
	mv "$root/usr/share/pzpgw/schemas/README.md" "$doc/README.schemas.md"
fi
# The top entry carries the version of this build.
sed "1s/^pzpgw ([^)]*)/pzpgw ($version)/" "$deb/changelog" |
	gzip -9n >"$doc/changelog.Debian.gz"
find "$root/usr/share/man" -type f ! -name '*.gz' -exec gzip -9nf {} + \
	2>/dev/null || true

# dpkg-shlibdeps wants a source package around the binary.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/debian"
printf 'Source: pzpgw\n\nPackage: pzpgw\nArchitecture: any\n' \
	>"$work/debian/control"
cp "$root/usr/sbin/pzpgw" "$work/pzpgw"
depends=$(cd "$work" && dpkg-shlibdeps -O pzpgw 2>/dev/null |
	sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "mkdeb: dpkg-shlibdeps gave no Depends" >&2; exit 1; }

rm -rf "$root/DEBIAN"
install -d -m 0755 "$root/DEBIAN"
size=$(du -k -s --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
	-e "s/@DEPENDS@/$depends/" "$deb/control" >"$root/DEBIAN/control"
for s in postinst prerm postrm; do
	install -m 0755 "$deb/$s" "$root/DEBIAN/$s"
done
(cd "$root" && find etc -type f | sed 's|^|/|' | sort) >"$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' |
	sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" \
	"$root/DEBIAN/md5sums"

mkdir -p "$outdir"
# One package in OUTDIR, so that `apt install ./OUTDIR/pzpgw_*.deb` is it.
rm -f "$outdir"/pzpgw_*.deb
out=$outdir/pzpgw_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "$out"

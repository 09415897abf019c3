#!/bin/sh
# make check-man: the committed manual pages are what the code says
# (`pzpgw help --man 8|5` from the help texts and the key tables), and
# they render without a warning from groff or from the man run lintian
# makes (`man --warnings`, whatis entry through lexgrog).
# usage: check_man.sh PZPGW MANDIR      exit 0 good, 1 differs or warns
set -u
bin=$1
dir=$2
tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT
status=0
for s in 8 5; do
	case $s in
	8) page=pzpgw.8 ;;
	5) page=pzpgw.conf.5 ;;
	esac
	if ! "$bin" help --man $s >"$tmp/$page"; then
		echo "check-man: $bin help --man $s failed" >&2
		status=1
		continue
	fi
	if [ ! -f "$dir/$page" ]; then
		echo "check-man: $dir/$page is missing (make man writes it)" >&2
		status=1
		continue
	fi
	if ! diff -u "$dir/$page" "$tmp/$page" >"$tmp/diff"; then
		echo "check-man: $dir/$page is not what the code says;" \
			"make man writes it again:" >&2
		cat "$tmp/diff" >&2
		status=1
	fi
	out=$(groff -man -ww -z "$dir/$page" 2>&1)
	if [ -n "$out" ]; then
		echo "check-man: groff warns on $dir/$page:" >&2
		echo "$out" >&2
		status=1
	fi
	# As lintian runs it (Lintian::Check::Documentation::Manual).
	out=$(env -i PATH="$PATH" LC_ALL=C.UTF-8 MANROFFSEQ= MANWIDTH=120 \
		man --warnings -E UTF-8 -l -Tutf8 -Z "$dir/$page" 2>&1 >/dev/null)
	if [ -n "$out" ]; then
		echo "check-man: man --warnings on $dir/$page:" >&2
		echo "$out" >&2
		status=1
	fi
	mkdir -p "$tmp/man/man$s"
	cp "$dir/$page" "$tmp/man/man$s/"
	if ! LC_ALL=C.UTF-8 lexgrog "$tmp/man/man$s/$page" >/dev/null 2>&1; then
		echo "check-man: $dir/$page: no whatis entry (NAME section)" >&2
		status=1
	fi
done
[ $status = 0 ] && echo "check-man: $dir/pzpgw.8 and pzpgw.conf.5 are current"
exit $status

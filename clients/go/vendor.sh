#!/usr/bin/env bash
# Makes vendor/ from Debian's golang-golang-x-crypto-dev (0.4.0) and
# golang-golang-x-sys-dev (0.3.0), for machines without a Go module proxy:
#   apt-get install -y golang-go golang-golang-x-crypto-dev
#   clients/go/vendor.sh && cd clients/go && go test ./...
# (the go command uses vendor/ when it exists). Elsewhere, skip this: the go
# command fetches golang.org/x/crypto as go.mod and go.sum say.
set -euo pipefail
cd "$(dirname "$0")"
src=${GOCODE_SRC:-/usr/share/gocode/src}
# module path, version, Debian package: the versions go.mod requires.
modules=("golang.org/x/crypto v0.4.0 golang-golang-x-crypto-dev"
         "golang.org/x/sys v0.3.0 golang-golang-x-sys-dev")
rm -rf vendor
mkdir -p vendor
: > vendor/modules.txt
for m in "${modules[@]}"; do
    read -r path version package <<<"$m"
    if [ ! -f "$src/$path/go.mod" ]; then
        echo "vendor.sh: $src/$path is missing: apt-get install -y $package" >&2
        exit 66
    fi
    mkdir -p "vendor/$(dirname "$path")"
    cp -r "$src/$path" "vendor/$path"
    go_line=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "vendor/$path/go.mod")
    printf '# %s %s\n## explicit; go %s\n' "$path" "$version" "$go_line" >> vendor/modules.txt
    # One line per package: every folder with non-test Go files, outside
    # testdata (the go command names any line that is missing).
    (cd vendor && find "$path" -name '*.go' ! -name '*_test.go' -not -path '*/testdata/*' -printf '%h\n') \
        | sort -u >> vendor/modules.txt
done
echo "vendor/: $(grep -c '^# ' vendor/modules.txt) modules from $src"

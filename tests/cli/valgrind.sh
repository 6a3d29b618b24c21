# valgrind memcheck on the non-AVX-512 paths (valgrind cannot execute AVX-512 here):
# generate and logits under CTRACE_ISA=avx2 and scalar, no errors and no leaks.
. tests/cli_lib.sh
case "$CTRACE" in *asan*|*qemu*) echo "skip: sanitizer/emulated build"; exit 0;; esac
command -v valgrind >/dev/null || fail "valgrind is not installed (scripts/setup-deps.sh installs it)"
VG="valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite,indirect"
for isa in avx2 scalar; do
    CTRACE_ISA=$isa $VG $CTRACE generate "$S260/stories260K.bin" -z "$S260/tok512.bin" -p "Once upon" -t 0.9 -s 3 -n 24 --threads 2 >/dev/null 2>"$TMP/vg" \
        || fail "valgrind generate [$isa]: $(cat "$TMP/vg")"
    CTRACE_ISA=$isa $VG $CTRACE logits "$S260/stories260K.bin" --tokens 1,403,407,261 -o "$TMP/l.f32" 2>"$TMP/vg" \
        || fail "valgrind logits [$isa]: $(cat "$TMP/vg")"
    echo "ok: valgrind [$isa]"
done

#!/bin/sh
# Makes the images the decoders' unit tests read (src/test_data.rs), with the real
# mke2fs, debugfs and e2fsck, then compresses them with zstd. Same e2fsprogs, same
# bytes: the UUID, hash seed and clock are fixed. Run from this folder; commit the
# .zst files. Made with e2fsprogs 1.47.0 (Debian 12).
#
# ext4.img: 1 KiB blocks, metadata_csum and 64bit (mke2fs's ext4 defaults), with
#   /sparse    ten 1 KiB data blocks two blocks apart: ten extents, so an extent
#              tree of depth 1 (one leaf block below the inode)
#   /big       a directory of 120 names, indexed by e2fsck -D (an htree)
#   /attr      a file with user.colour=blue in its inode and a 300-byte
#              user.big in an attribute block
#   /link      a fast symlink to "sparse"
# ext2.img: 1 KiB blocks, block maps: /big.bin has 300 blocks (12 direct, IND, DIND).
set -eu
export E2FSPROGS_FAKE_TIME=1600000000
uuid=5d2f9d6e-0c1a-4b7e-9c3d-2a1b0c9d8e7f
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir "$tmp/src" "$tmp/src/big"
for i in $(seq 0 9); do
    printf 'block %02d' "$i" | dd of="$tmp/src/sparse" bs=1024 seek=$((i * 3)) conv=notrunc status=none
done
for i in $(seq 1 120); do : > "$tmp/src/big/name-$i"; done
printf 'attributes\n' > "$tmp/src/attr"
ln -s sparse "$tmp/src/link"
touch -d @1600000000 "$tmp/src" "$tmp/src"/* "$tmp/src/big"/*
rm -f ext4.img
mke2fs -q -F -t ext4 -b 1024 -I 256 -U "$uuid" -E hash_seed="$uuid" -d "$tmp/src" ext4.img 2M
debugfs -w -R 'ea_set /attr user.colour blue' ext4.img
big=$(head -c 300 /dev/zero | tr '\0' 'x')
debugfs -w -R "ea_set /attr user.big $big" ext4.img
e2fsck -fyD ext4.img >/dev/null || [ $? -eq 1 ]
e2fsck -fn ext4.img

rm -rf "$tmp/src2"; mkdir "$tmp/src2"
head -c $((300 * 1024)) /dev/zero | tr '\0' 'b' > "$tmp/src2/big.bin"
touch -d @1600000000 "$tmp/src2" "$tmp/src2"/*
rm -f ext2.img
mke2fs -q -F -t ext2 -b 1024 -U "$uuid" -E hash_seed="$uuid" -d "$tmp/src2" ext2.img 1M
e2fsck -fn ext2.img

zstd -q -19 -f --rm ext4.img ext2.img

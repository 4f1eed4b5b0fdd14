;; 2- and 4-bit packing, LSB first (element 0 in the low bits), two's complement inside the
;; field, and the inverse. Whole blocks only (32 values per 16 bytes at 4 bits, 64 at 2 bits);
;; the caller packs the few values left over.
(module
  (import "env" "memory" (memory 1))

  ;; n4 blocks of 32 one-byte values at $src -> 16 bytes each at $dst.
  (func (export "pack4") (param $src i32) (param $dst i32) (param $blocks i32)
    (local $a v128) (local $b v128)
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $blocks)))
      ;; as 16-bit lanes: element 2i in the low byte, 2i+1 in the high byte
      (local.set $a (v128.and (v128.load (local.get $src)) (v128.const i8x16 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15)))
      (local.set $b (v128.and (v128.load offset=16 (local.get $src)) (v128.const i8x16 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15)))
      (local.set $a (v128.and (v128.or (local.get $a) (i16x8.shr_u (local.get $a) (i32.const 4))) (v128.const i16x8 255 255 255 255 255 255 255 255)))
      (local.set $b (v128.and (v128.or (local.get $b) (i16x8.shr_u (local.get $b) (i32.const 4))) (v128.const i16x8 255 255 255 255 255 255 255 255)))
      (v128.store (local.get $dst) (i8x16.narrow_i16x8_u (local.get $a) (local.get $b)))
      (local.set $src (i32.add (local.get $src) (i32.const 32)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
      (local.set $blocks (i32.sub (local.get $blocks) (i32.const 1)))
      (br $l))))

  (func $pack2lane (param $v v128) (result v128)
    (local.set $v (v128.and (local.get $v) (v128.const i8x16 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3)))
    ;; per 32-bit lane with bytes b0..b3: b1 joins b0 at bits 2-3, b3 joins b2 at bits 18-19,
    ;; then that pair moves to bits 4-7
    (local.set $v (v128.or (local.get $v) (i32x4.shr_u (local.get $v) (i32.const 6))))
    (local.set $v (v128.or (local.get $v) (i32x4.shr_u (local.get $v) (i32.const 12))))
    (v128.and (local.get $v) (v128.const i32x4 255 255 255 255)))

  ;; blocks of 64 one-byte values at $src -> 16 bytes each at $dst.
  (func (export "pack2") (param $src i32) (param $dst i32) (param $blocks i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $blocks)))
      (v128.store (local.get $dst) (i8x16.narrow_i16x8_u
        (i16x8.narrow_i32x4_s (call $pack2lane (v128.load (local.get $src))) (call $pack2lane (v128.load offset=16 (local.get $src))))
        (i16x8.narrow_i32x4_s (call $pack2lane (v128.load offset=32 (local.get $src))) (call $pack2lane (v128.load offset=48 (local.get $src))))))
      (local.set $src (i32.add (local.get $src) (i32.const 64)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
      (local.set $blocks (i32.sub (local.get $blocks) (i32.const 1)))
      (br $l))))

  ;; Sign extension of a field: (v xor half) - half, where half is 8 (4-bit) or 2 (2-bit) for
  ;; signed containers and 0 for unsigned ones.
  (func $ext (param $v v128) (param $half v128) (result v128)
    (i8x16.sub (v128.xor (local.get $v) (local.get $half)) (local.get $half)))

  ;; blocks of 16 bytes at $src -> 32 one-byte values each at $dst.
  (func (export "unpack4") (param $src i32) (param $dst i32) (param $blocks i32) (param $signed i32)
    (local $v v128) (local $lo v128) (local $hi v128) (local $half v128)
    (local.set $half (i8x16.splat (select (i32.const 8) (i32.const 0) (local.get $signed))))
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $blocks)))
      (local.set $v (v128.load (local.get $src)))
      (local.set $lo (call $ext (v128.and (local.get $v) (v128.const i8x16 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15 15)) (local.get $half)))
      (local.set $hi (call $ext (i8x16.shr_u (local.get $v) (i32.const 4)) (local.get $half)))
      (v128.store (local.get $dst) (i8x16.shuffle 0 16 1 17 2 18 3 19 4 20 5 21 6 22 7 23 (local.get $lo) (local.get $hi)))
      (v128.store offset=16 (local.get $dst) (i8x16.shuffle 8 24 9 25 10 26 11 27 12 28 13 29 14 30 15 31 (local.get $lo) (local.get $hi)))
      (local.set $src (i32.add (local.get $src) (i32.const 16)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
      (local.set $blocks (i32.sub (local.get $blocks) (i32.const 1)))
      (br $l))))

  ;; blocks of 16 bytes at $src -> 64 one-byte values each at $dst.
  (func (export "unpack2") (param $src i32) (param $dst i32) (param $blocks i32) (param $signed i32)
    (local $v v128) (local $f0 v128) (local $f1 v128) (local $f2 v128) (local $f3 v128) (local $half v128)
    (local $a v128) (local $b v128)
    (local.set $half (i8x16.splat (select (i32.const 2) (i32.const 0) (local.get $signed))))
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $blocks)))
      (local.set $v (v128.load (local.get $src)))
      (local.set $f0 (call $ext (v128.and (local.get $v) (v128.const i8x16 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3)) (local.get $half)))
      (local.set $f1 (call $ext (v128.and (i8x16.shr_u (local.get $v) (i32.const 2)) (v128.const i8x16 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3)) (local.get $half)))
      (local.set $f2 (call $ext (v128.and (i8x16.shr_u (local.get $v) (i32.const 4)) (v128.const i8x16 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3 3)) (local.get $half)))
      (local.set $f3 (call $ext (i8x16.shr_u (local.get $v) (i32.const 6)) (local.get $half)))
      ;; interleave f0/f1 and f2/f3 bytewise, then the two results 16 bits at a time
      (local.set $a (i8x16.shuffle 0 16 1 17 2 18 3 19 4 20 5 21 6 22 7 23 (local.get $f0) (local.get $f1)))
      (local.set $b (i8x16.shuffle 0 16 1 17 2 18 3 19 4 20 5 21 6 22 7 23 (local.get $f2) (local.get $f3)))
      (v128.store (local.get $dst) (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $a) (local.get $b)))
      (v128.store offset=16 (local.get $dst) (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $a) (local.get $b)))
      (local.set $a (i8x16.shuffle 8 24 9 25 10 26 11 27 12 28 13 29 14 30 15 31 (local.get $f0) (local.get $f1)))
      (local.set $b (i8x16.shuffle 8 24 9 25 10 26 11 27 12 28 13 29 14 30 15 31 (local.get $f2) (local.get $f3)))
      (v128.store offset=32 (local.get $dst) (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $a) (local.get $b)))
      (v128.store offset=48 (local.get $dst) (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $a) (local.get $b)))
      (local.set $src (i32.add (local.get $src) (i32.const 16)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 64)))
      (local.set $blocks (i32.sub (local.get $blocks) (i32.const 1)))
      (br $l))))
)

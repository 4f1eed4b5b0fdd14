;; float16 and bfloat16 bit patterns to float32, 8 values a step (the caller converts the
;; rest), exactly: every value of both types is a float32. float16 as in F. Giesen's
;; half_to_float: the exponent and fraction shifted into place and rebiased, Inf/NaN taken
;; on to exponent 255, subnormals renormalized by a float subtraction (exact).
(module
  (import "env" "memory" (memory 1))

  ;; $n (a multiple of 8) halves at $src -> float32 at $dst
  (func (export "halves") (param $src i32) (param $dst i32) (param $n i32)
    (local $h v128) (local $lo v128) (local $hi v128) (local $o v128) (local $e v128)
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $h (v128.load (local.get $src)))
      (local.set $lo (i32x4.extend_low_i16x8_u (local.get $h)))
      (local.set $hi (i32x4.extend_high_i16x8_u (local.get $h)))
      (local.set $o (i32x4.shl (v128.and (local.get $lo) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff)) (i32.const 13)))
      (local.set $e (v128.and (local.get $o) (v128.const i32x4 0x0f800000 0x0f800000 0x0f800000 0x0f800000)))
      (local.set $o (i32x4.add (local.get $o) (v128.const i32x4 0x38000000 0x38000000 0x38000000 0x38000000)))
      ;; Inf and NaN: the exponent goes on to 255
      (local.set $o (i32x4.add (local.get $o) (v128.and (i32x4.eq (local.get $e) (v128.const i32x4 0x0f800000 0x0f800000 0x0f800000 0x0f800000)) (v128.const i32x4 0x38000000 0x38000000 0x38000000 0x38000000))))
      ;; zero and subnormals: 2^-14 (1 + m / 1024) - 2^-14 = m 2^-24, exactly
      (local.set $o (v128.bitselect
        (f32x4.sub (i32x4.add (local.get $o) (v128.const i32x4 0x00800000 0x00800000 0x00800000 0x00800000)) (v128.const i32x4 0x38800000 0x38800000 0x38800000 0x38800000))
        (local.get $o)
        (i32x4.eq (local.get $e) (v128.const i32x4 0 0 0 0))))
      (v128.store offset=0 (local.get $dst) (v128.or (local.get $o) (i32x4.shl (v128.and (local.get $lo) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000)) (i32.const 16))))
      (local.set $o (i32x4.shl (v128.and (local.get $hi) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff)) (i32.const 13)))
      (local.set $e (v128.and (local.get $o) (v128.const i32x4 0x0f800000 0x0f800000 0x0f800000 0x0f800000)))
      (local.set $o (i32x4.add (local.get $o) (v128.const i32x4 0x38000000 0x38000000 0x38000000 0x38000000)))
      ;; Inf and NaN: the exponent goes on to 255
      (local.set $o (i32x4.add (local.get $o) (v128.and (i32x4.eq (local.get $e) (v128.const i32x4 0x0f800000 0x0f800000 0x0f800000 0x0f800000)) (v128.const i32x4 0x38000000 0x38000000 0x38000000 0x38000000))))
      ;; zero and subnormals: 2^-14 (1 + m / 1024) - 2^-14 = m 2^-24, exactly
      (local.set $o (v128.bitselect
        (f32x4.sub (i32x4.add (local.get $o) (v128.const i32x4 0x00800000 0x00800000 0x00800000 0x00800000)) (v128.const i32x4 0x38800000 0x38800000 0x38800000 0x38800000))
        (local.get $o)
        (i32x4.eq (local.get $e) (v128.const i32x4 0 0 0 0))))
      (v128.store offset=16 (local.get $dst) (v128.or (local.get $o) (i32x4.shl (v128.and (local.get $hi) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000)) (i32.const 16))))
      (local.set $src (i32.add (local.get $src) (i32.const 16)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
      (local.set $n (i32.sub (local.get $n) (i32.const 8)))
      (br $l))))

  ;; $n (a multiple of 8) bfloat16 at $src -> float32 at $dst: the upper half of each
  (func (export "bfloats") (param $src i32) (param $dst i32) (param $n i32)
    (local $h v128)
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $h (v128.load (local.get $src)))
      (v128.store (local.get $dst) (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $h)) (i32.const 16)))
      (v128.store offset=16 (local.get $dst) (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $h)) (i32.const 16)))
      (local.set $src (i32.add (local.get $src) (i32.const 16)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
      (local.set $n (i32.sub (local.get $n) (i32.const 8)))
      (br $l))))
)

;; x_hat = (q - zero_point) * scale in float32, saturated at +-FLT_MAX (the reference's
;; mulSat). q - zp is a small integer, exact in float32, so one f32x4.mul rounds exactly as
;; the reference's Math.fround of the float64 product does.
;;
;; Unsigned inputs are read biased (xor 0x80 / 0x8000 makes q - bias a signed value) so one
;; sign-extending path serves all four containers; the zero point is biased to match.
;; Constant block $k: +0 scale, +16 f32(zp - bias), +32 FLT_MAX, +48 -FLT_MAX, +64 xor pattern
;; (each 4 lanes), +80 width (1|2), +84 bias, +88 clamp (0 when no product can pass FLT_MAX,
;; which the caller knows from the scales: the 8-bit loop then skips the clamp); constants are
;; re-read inside loops (see quantize.wat).
(module
  (import "env" "memory" (memory 1))

  (func $widen (param $q i32) (param $k i32) (result v128)
    (if (result v128) (i32.eq (i32.load offset=80 (local.get $k)) (i32.const 1))
      (then (i32x4.extend_low_i16x8_s (i16x8.extend_low_i8x16_s
        (v128.xor (v128.load32_zero (local.get $q)) (v128.load offset=64 (local.get $k))))))
      (else (i32x4.extend_low_i16x8_s
        (v128.xor (v128.load64_zero (local.get $q)) (v128.load offset=64 (local.get $k)))))))

  ;; Four signed 32-bit lanes -> four reconstructions stored at $x.
  (func $store4 (param $x i32) (param $v v128) (param $k i32)
    (v128.store (local.get $x) (f32x4.pmax (f32x4.pmin
      (f32x4.mul (f32x4.sub (f32x4.convert_i32x4_s (local.get $v)) (v128.load offset=16 (local.get $k))) (v128.load (local.get $k)))
      (v128.load offset=32 (local.get $k))) (v128.load offset=48 (local.get $k)))))

  (func $span (param $x i32) (param $q i32) (param $n i32) (param $k i32)
    (local $end i32) (local $width i32) (local $v f32) (local $qi i32) (local $w v128) (local $h v128)
    (local.set $width (i32.load offset=80 (local.get $k)))
    ;; 8-bit input, 16 values per step, written out in full (no calls: V8 does not inline them)
    (if (i32.eq (local.get $width) (i32.const 1)) (then
      (local.set $end (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -16)) (i32.const 2))))
      (if (i32.eqz (i32.load offset=88 (local.get $k))) (then
        (block $done16n (loop $l16n
          (br_if $done16n (i32.ge_u (local.get $x) (local.get $end)))
          (local.set $w (v128.xor (v128.load (local.get $q)) (v128.load offset=64 (local.get $k))))
          (local.set $h (i16x8.extend_low_i8x16_s (local.get $w)))
          (v128.store (local.get $x)
            (f32x4.mul (f32x4.sub (f32x4.convert_i32x4_s (i32x4.extend_low_i16x8_s (local.get $h))) (v128.load offset=16 (local.get $k))) (v128.load (local.get $k))))
          (v128.store offset=16 (local.get $x)
            (f32x4.mul (f32x4.sub (f32x4.convert_i32x4_s (i32x4.extend_high_i16x8_s (local.get $h))) (v128.load offset=16 (local.get $k))) (v128.load (local.get $k))))
          (local.set $h (i16x8.extend_high_i8x16_s (local.get $w)))
          (v128.store offset=32 (local.get $x)
            (f32x4.mul (f32x4.sub (f32x4.convert_i32x4_s (i32x4.extend_low_i16x8_s (local.get $h))) (v128.load offset=16 (local.get $k))) (v128.load (local.get $k))))
          (v128.store offset=48 (local.get $x)
            (f32x4.mul (f32x4.sub (f32x4.convert_i32x4_s (i32x4.extend_high_i16x8_s (local.get $h))) (v128.load offset=16 (local.get $k))) (v128.load (local.get $k))))
          (local.set $x (i32.add (local.get $x) (i32.const 64)))
          (local.set $q (i32.add (local.get $q) (i32.const 16)))
          (br $l16n)))))
      (block $done16 (loop $l16
        (br_if $done16 (i32.ge_u (local.get $x) (local.get $end)))
        (local.set $w (v128.xor (v128.load (local.get $q)) (v128.load offset=64 (local.get $k))))
        (local.set $h (i16x8.extend_low_i8x16_s (local.get $w)))
        (v128.store (local.get $x) (f32x4.pmax (f32x4.pmin
          (f32x4.mul (f32x4.sub (f32x4.convert_i32x4_s (i32x4.extend_low_i16x8_s (local.get $h))) (v128.load offset=16 (local.get $k))) (v128.load (local.get $k)))
          (v128.load offset=32 (local.get $k))) (v128.load offset=48 (local.get $k))))
        (v128.store offset=16 (local.get $x) (f32x4.pmax (f32x4.pmin
          (f32x4.mul (f32x4.sub (f32x4.convert_i32x4_s (i32x4.extend_high_i16x8_s (local.get $h))) (v128.load offset=16 (local.get $k))) (v128.load (local.get $k)))
          (v128.load offset=32 (local.get $k))) (v128.load offset=48 (local.get $k))))
        (local.set $h (i16x8.extend_high_i8x16_s (local.get $w)))
        (v128.store offset=32 (local.get $x) (f32x4.pmax (f32x4.pmin
          (f32x4.mul (f32x4.sub (f32x4.convert_i32x4_s (i32x4.extend_low_i16x8_s (local.get $h))) (v128.load offset=16 (local.get $k))) (v128.load (local.get $k)))
          (v128.load offset=32 (local.get $k))) (v128.load offset=48 (local.get $k))))
        (v128.store offset=48 (local.get $x) (f32x4.pmax (f32x4.pmin
          (f32x4.mul (f32x4.sub (f32x4.convert_i32x4_s (i32x4.extend_high_i16x8_s (local.get $h))) (v128.load offset=16 (local.get $k))) (v128.load (local.get $k)))
          (v128.load offset=32 (local.get $k))) (v128.load offset=48 (local.get $k))))
        (local.set $x (i32.add (local.get $x) (i32.const 64)))
        (local.set $q (i32.add (local.get $q) (i32.const 16)))
        (br $l16)))
      (local.set $n (i32.and (local.get $n) (i32.const 15)))))
    (local.set $end (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
      (call $store4 (local.get $x) (call $widen (local.get $q) (local.get $k)) (local.get $k))
      (local.set $x (i32.add (local.get $x) (i32.const 16)))
      (local.set $q (i32.add (local.get $q) (i32.shl (local.get $width) (i32.const 2))))
      (br $l)))
    (local.set $end (i32.add (local.get $end) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 2))))
    (block $tdone (loop $t
      (br_if $tdone (i32.ge_u (local.get $x) (local.get $end)))
      (local.set $qi (i32.xor
        (if (result i32) (i32.eq (local.get $width) (i32.const 1))
          (then (i32.load8_u (local.get $q))) (else (i32.load16_u (local.get $q))))
        (i32.load offset=64 (local.get $k))))
      ;; sign-extend the biased value from the container width
      (local.set $qi (if (result i32) (i32.eq (local.get $width) (i32.const 1))
        (then (i32.extend8_s (local.get $qi))) (else (i32.extend16_s (local.get $qi)))))
      (local.set $v (f32.mul (f32.sub (f32.convert_i32_s (local.get $qi)) (f32.load offset=16 (local.get $k))) (f32.load (local.get $k))))
      (local.set $v (select (f32.load offset=32 (local.get $k)) (local.get $v) (f32.lt (f32.load offset=32 (local.get $k)) (local.get $v))))
      (local.set $v (select (f32.load offset=48 (local.get $k)) (local.get $v) (f32.lt (local.get $v) (f32.load offset=48 (local.get $k)))))
      (f32.store (local.get $x) (local.get $v))
      (local.set $x (i32.add (local.get $x) (i32.const 4)))
      (local.set $q (i32.add (local.get $q) (local.get $width)))
      (br $t))))

  ;; Runs with one scale each, laid out as in quantize.wat "runs".
  (func (export "runs") (param $x i32) (param $q i32) (param $rows i32) (param $runs i32) (param $runLen i32)
        (param $lastLen i32) (param $ps i32) (param $pz i32) (param $prow i32) (param $k i32)
    (local $r i32) (local $j i32) (local $len i32) (local $p i32)
    (block $rows_done (loop $row
      (br_if $rows_done (i32.ge_u (local.get $r) (local.get $rows)))
      (local.set $j (i32.const 0))
      (block $runs_done (loop $run
        (br_if $runs_done (i32.ge_u (local.get $j) (local.get $runs)))
        (local.set $len (select (local.get $lastLen) (local.get $runLen)
          (i32.eq (local.get $j) (i32.sub (local.get $runs) (i32.const 1)))))
        (local.set $p (i32.shl (i32.add (i32.mul (local.get $r) (local.get $prow)) (local.get $j)) (i32.const 2)))
        (v128.store (local.get $k) (f32x4.splat (f32.load (i32.add (local.get $ps) (local.get $p)))))
        (v128.store offset=16 (local.get $k) (f32x4.splat (f32.convert_i32_s
          (i32.sub (i32.load (i32.add (local.get $pz) (local.get $p))) (i32.load offset=84 (local.get $k))))))
        (call $span (local.get $x) (local.get $q) (local.get $len) (local.get $k))
        (local.set $x (i32.add (local.get $x) (i32.shl (local.get $len) (i32.const 2))))
        (local.set $q (i32.add (local.get $q) (i32.mul (local.get $len) (i32.load offset=80 (local.get $k)))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $run)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $row))))

  ;; $rows rows of $len elements sharing the scale vector at $ps and the biased float zero
  ;; points at $pzf (f32(zp - bias), written by the caller).
  (func (export "rows") (param $x i32) (param $q i32) (param $rows i32) (param $len i32) (param $ps i32) (param $pzf i32) (param $k i32)
    (local $r i32) (local $i i32) (local $end i32) (local $width i32) (local $qi i32) (local $v f32)
    (local.set $width (i32.load offset=80 (local.get $k)))
    (local.set $end (i32.shl (i32.and (local.get $len) (i32.const -4)) (i32.const 2)))
    (block $rows_done (loop $row
      (br_if $rows_done (i32.ge_u (local.get $r) (local.get $rows)))
      (local.set $i (i32.const 0))
      (block $done (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (v128.store (i32.add (local.get $x) (local.get $i)) (f32x4.pmax (f32x4.pmin
          (f32x4.mul (f32x4.sub (f32x4.convert_i32x4_s
                                  (call $widen (i32.add (local.get $q) (i32.mul (i32.shr_u (local.get $i) (i32.const 2)) (local.get $width))) (local.get $k)))
                                (v128.load (i32.add (local.get $pzf) (local.get $i))))
                     (v128.load (i32.add (local.get $ps) (local.get $i))))
          (v128.load offset=32 (local.get $k))) (v128.load offset=48 (local.get $k))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $l)))
      (block $tdone (loop $t
        (br_if $tdone (i32.ge_u (local.get $i) (i32.shl (local.get $len) (i32.const 2))))
        (local.set $qi (i32.xor
          (if (result i32) (i32.eq (local.get $width) (i32.const 1))
            (then (i32.load8_u (i32.add (local.get $q) (i32.shr_u (local.get $i) (i32.const 2)))))
            (else (i32.load16_u (i32.add (local.get $q) (i32.shr_u (local.get $i) (i32.const 1))))))
          (i32.load offset=64 (local.get $k))))
        (local.set $qi (if (result i32) (i32.eq (local.get $width) (i32.const 1))
          (then (i32.extend8_s (local.get $qi))) (else (i32.extend16_s (local.get $qi)))))
        (local.set $v (f32.mul (f32.sub (f32.convert_i32_s (local.get $qi)) (f32.load (i32.add (local.get $pzf) (local.get $i))))
                               (f32.load (i32.add (local.get $ps) (local.get $i)))))
        (local.set $v (select (f32.load offset=32 (local.get $k)) (local.get $v) (f32.lt (f32.load offset=32 (local.get $k)) (local.get $v))))
        (local.set $v (select (f32.load offset=48 (local.get $k)) (local.get $v) (f32.lt (local.get $v) (f32.load offset=48 (local.get $k)))))
        (f32.store (i32.add (local.get $x) (local.get $i)) (local.get $v))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $t)))
      (local.set $x (i32.add (local.get $x) (i32.shl (local.get $len) (i32.const 2))))
      (local.set $q (i32.add (local.get $q) (i32.mul (local.get $len) (local.get $width))))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $row))))
)

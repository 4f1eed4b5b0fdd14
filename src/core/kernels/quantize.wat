;; q = clamp(nearest(x / scale), lo, hi) + zero_point, exactly as the reference computes it:
;; f32x4.div (not a multiply by 1/scale), f32x4.nearest (ties to even) and a clamp to
;; lo = q_min - zp, hi = q_max - zp, which equals clamping after adding zp because both are
;; small integers. Optional error sums (|x - x_hat|, its square, x^2) are taken in float64.
;;
;; Why the code looks the way it does:
;; - Per-span constants are read from memory (the block at $k) inside the loops. TurboFan in
;;   Node 20 sinks loop-invariant splats into the loop body and re-materialises them every
;;   iteration (with a false dependency through vcvtsi2ss): loads from L1 are cheaper.
;; - The float -> int conversion adds the magic number M = 1.5 * 2^23 (+ zp - bias): for an
;;   integer c with |c| < 2^22, bits(c + M) = bits(M) + c, so one add and one integer subtract
;;   replace i32x4.trunc_sat (a long instruction sequence in V8).
;; - Unsigned containers are written biased (q - 128 or q - 32768) so the signed narrowing
;;   instructions never saturate, then the bias is undone with an xor on the stored lanes.
;;
;; Constant block $k (96 bytes + 24): +0 scale, +16 lo, +32 hi, +48 mz = f32(M + zp - bias),
;; +64 mb = bits(M), +80 xor pattern, each splatted to 4 lanes; +96 zp (i32), +100 width (1|2),
;; +112 8 bytes of scratch (mse.ts, for mse.wat "candidates").
;; Accumulator block $acc (144 bytes): +0 clipped i32x4, +16/+32 max |e| f64x2 (low/high
;; pairs), +48/+64 sum |e|, +80/+96 sum e^2, +112/+128 sum x^2. Kernels add to what is there.
(module
  (import "env" "memory" (memory 1))

  ;; One element, for the tails that do not fill a vector. Same arithmetic in scalar form.
  (func $one (param $x i32) (param $q i32) (param $s f32) (param $lo f32) (param $hi f32) (param $zp i32)
              (param $acc i32) (param $width i32) (param $sums i32)
    (local $v f32) (local $r f32) (local $c f32) (local $e f64) (local $qv i32)
    (local.set $v (f32.load (local.get $x)))
    (local.set $r (f32.nearest (f32.div (local.get $v) (local.get $s))))
    ;; pmin/pmax semantics (the compare picks the bound only when it is strictly beyond).
    (local.set $c (select (local.get $hi) (local.get $r) (f32.lt (local.get $hi) (local.get $r))))
    (local.set $c (select (local.get $lo) (local.get $c) (f32.lt (local.get $c) (local.get $lo))))
    (if (f32.ne (local.get $r) (local.get $c))
      (then (i32.store (local.get $acc) (i32.add (i32.load (local.get $acc)) (i32.const 1)))))
    (local.set $qv (i32.add (i32.trunc_sat_f32_s (local.get $c)) (local.get $zp)))
    (if (i32.eq (local.get $width) (i32.const 1))
      (then (i32.store8 (local.get $q) (local.get $qv)))
      (else (i32.store16 (local.get $q) (local.get $qv))))
    (if (local.get $sums)
      (then
        (local.set $e (f64.abs (f64.sub (f64.promote_f32 (local.get $v))
                                        (f64.promote_f32 (f32.mul (local.get $c) (local.get $s))))))
        (f64.store offset=16 (local.get $acc) (select (local.get $e) (f64.load offset=16 (local.get $acc))
          (f64.lt (f64.load offset=16 (local.get $acc)) (local.get $e))))
        (f64.store offset=48 (local.get $acc) (f64.add (f64.load offset=48 (local.get $acc)) (local.get $e)))
        (f64.store offset=80 (local.get $acc) (f64.add (f64.load offset=80 (local.get $acc))
          (f64.mul (local.get $e) (local.get $e))))
        (f64.store offset=112 (local.get $acc) (f64.add (f64.load offset=112 (local.get $acc))
          (f64.mul (f64.promote_f32 (local.get $v)) (f64.promote_f32 (local.get $v))))))))

  ;; n elements, 8-bit output, no error sums (only the clipped count): four vectors per step.
  (func $span8 (param $x i32) (param $q i32) (param $n i32) (param $k i32) (param $acc i32)
    (local $end i32) (local $end4 i32) (local $r v128) (local $c v128) (local $a v128) (local $b v128) (local $cnt v128)
    (local.set $cnt (v128.load (local.get $acc)))
    (local.set $end (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -16)) (i32.const 2))))
    (local.set $end4 (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
      (local.set $r (f32x4.nearest (f32x4.div (v128.load (local.get $x)) (v128.load (local.get $k)))))
      (local.set $c (f32x4.pmax (f32x4.pmin (local.get $r) (v128.load offset=32 (local.get $k))) (v128.load offset=16 (local.get $k))))
      (local.set $cnt (i32x4.sub (local.get $cnt) (f32x4.ne (local.get $r) (local.get $c))))
      (local.set $a (i32x4.sub (f32x4.add (local.get $c) (v128.load offset=48 (local.get $k))) (v128.load offset=64 (local.get $k))))
      (local.set $r (f32x4.nearest (f32x4.div (v128.load offset=16 (local.get $x)) (v128.load (local.get $k)))))
      (local.set $c (f32x4.pmax (f32x4.pmin (local.get $r) (v128.load offset=32 (local.get $k))) (v128.load offset=16 (local.get $k))))
      (local.set $cnt (i32x4.sub (local.get $cnt) (f32x4.ne (local.get $r) (local.get $c))))
      (local.set $b (i32x4.sub (f32x4.add (local.get $c) (v128.load offset=48 (local.get $k))) (v128.load offset=64 (local.get $k))))
      (local.set $a (i16x8.narrow_i32x4_s (local.get $a) (local.get $b)))
      (local.set $r (f32x4.nearest (f32x4.div (v128.load offset=32 (local.get $x)) (v128.load (local.get $k)))))
      (local.set $c (f32x4.pmax (f32x4.pmin (local.get $r) (v128.load offset=32 (local.get $k))) (v128.load offset=16 (local.get $k))))
      (local.set $cnt (i32x4.sub (local.get $cnt) (f32x4.ne (local.get $r) (local.get $c))))
      (local.set $b (i32x4.sub (f32x4.add (local.get $c) (v128.load offset=48 (local.get $k))) (v128.load offset=64 (local.get $k))))
      (local.set $r (f32x4.nearest (f32x4.div (v128.load offset=48 (local.get $x)) (v128.load (local.get $k)))))
      (local.set $c (f32x4.pmax (f32x4.pmin (local.get $r) (v128.load offset=32 (local.get $k))) (v128.load offset=16 (local.get $k))))
      (local.set $cnt (i32x4.sub (local.get $cnt) (f32x4.ne (local.get $r) (local.get $c))))
      (local.set $b (i16x8.narrow_i32x4_s (local.get $b)
        (i32x4.sub (f32x4.add (local.get $c) (v128.load offset=48 (local.get $k))) (v128.load offset=64 (local.get $k)))))
      (v128.store (local.get $q) (v128.xor (i8x16.narrow_i16x8_s (local.get $a) (local.get $b)) (v128.load offset=80 (local.get $k))))
      (local.set $x (i32.add (local.get $x) (i32.const 64)))
      (local.set $q (i32.add (local.get $q) (i32.const 16)))
      (br $l)))
    (block $done4 (loop $l4
      (br_if $done4 (i32.ge_u (local.get $x) (local.get $end4)))
      (local.set $r (f32x4.nearest (f32x4.div (v128.load (local.get $x)) (v128.load (local.get $k)))))
      (local.set $c (f32x4.pmax (f32x4.pmin (local.get $r) (v128.load offset=32 (local.get $k))) (v128.load offset=16 (local.get $k))))
      (local.set $cnt (i32x4.sub (local.get $cnt) (f32x4.ne (local.get $r) (local.get $c))))
      (local.set $a (i32x4.sub (f32x4.add (local.get $c) (v128.load offset=48 (local.get $k))) (v128.load offset=64 (local.get $k))))
      (local.set $a (i16x8.narrow_i32x4_s (local.get $a) (local.get $a)))
      (v128.store32_lane 0 (local.get $q) (v128.xor (i8x16.narrow_i16x8_s (local.get $a) (local.get $a)) (v128.load offset=80 (local.get $k))))
      (local.set $x (i32.add (local.get $x) (i32.const 16)))
      (local.set $q (i32.add (local.get $q) (i32.const 4)))
      (br $l4)))
    (v128.store (local.get $acc) (local.get $cnt))
    (call $tail (local.get $x) (local.get $q) (i32.and (local.get $n) (i32.const 3)) (local.get $k) (local.get $acc) (i32.const 0)))

  ;; n elements with error sums; $width 1 or 2 bytes per output element.
  ;;
  ;; The sums are taken in float32 lanes, in blocks of 8 vectors (two a step) whose lane sums
  ;; are then added to the float64 pairs at $acc, and stay within 1e-6 relative of the
  ;; reference's float64 sums in element order. For non-negative terms each rounded once
  ;; (relative u = 2^-24), a sum in which every term passes through at most m float32
  ;; additions is within (1 + u)^(m + 1) - 1 relative: here m = 8 (a block's lane adds 8
  ;; terms), 5.4e-7, and the float64 part adds n * 2^-53 at most. The terms:
  ;; - |e| = |x - x_hat| in float32 is exact where x was not clipped (x and x_hat are within a
  ;;   factor 2 of each other, or x_hat is 0: Sterbenz's lemma), rounded once where it was;
  ;; - e^2 and x^2 are one float32 product each, rounded once while normal; a product below
  ;;   float32's normal range is off by at most 2^-150 absolute, which quantize.ts weighs
  ;;   against the sum (kernelSumsPrecise) before it uses the sums.
  ;; max |e| stays exact: taken from the float32 |e| of blocks without a clipped element
  ;; (exact, see above), and for a block with one recomputed in float64 ($blockmax).
  ;; Two vectors a step, not four: four made TurboFan spill most of its registers.
  ;; Block $acc +144: the float32 abs mask (4 lanes); +160: the clipped counts at a block's start.
  (func $spanr (param $x i32) (param $q i32) (param $n i32) (param $k i32) (param $acc i32) (param $width i32)
    (local $end i32) (local $bend i32) (local $b0 i32)
    (local $v v128) (local $r v128) (local $c v128) (local $d v128) (local $e v128)
    (local $cnt v128) (local $mxb v128) (local $mx v128) (local $sa v128) (local $ss v128) (local $sx v128) (local $qa v128)
    (local.set $cnt (v128.load (local.get $acc)))
    (local.set $end (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 2))))
    (block $done (loop $blk
      (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
      (local.set $b0 (local.get $x))
      (local.set $bend (select (local.get $end) (i32.add (local.get $x) (i32.const 128))
        (i32.lt_u (i32.sub (local.get $end) (local.get $x)) (i32.const 128))))
      (v128.store offset=160 (local.get $acc) (local.get $cnt))
      (local.set $mxb (v128.const i32x4 0 0 0 0))
      (local.set $sa (v128.const i32x4 0 0 0 0))
      (local.set $ss (v128.const i32x4 0 0 0 0))
      (local.set $sx (v128.const i32x4 0 0 0 0))
      (loop $l
        (local.set $v (v128.load offset=0 (local.get $x)))
        (local.set $r (f32x4.nearest (f32x4.div (local.get $v) (v128.load (local.get $k)))))
        (local.set $c (f32x4.pmax (f32x4.pmin (local.get $r) (v128.load offset=32 (local.get $k))) (v128.load offset=16 (local.get $k))))
        (local.set $cnt (i32x4.sub (local.get $cnt) (f32x4.ne (local.get $r) (local.get $c))))
        (local.set $d (f32x4.sub (local.get $v) (f32x4.mul (local.get $c) (v128.load (local.get $k)))))
        (local.set $e (v128.and (local.get $d) (v128.load offset=144 (local.get $acc))))
        (local.set $mxb (f32x4.pmax (local.get $mxb) (local.get $e)))
        (local.set $sa (f32x4.add (local.get $sa) (local.get $e)))
        (local.set $ss (f32x4.add (local.get $ss) (f32x4.mul (local.get $d) (local.get $d))))
        (local.set $sx (f32x4.add (local.get $sx) (f32x4.mul (local.get $v) (local.get $v))))
        (local.set $qa (i32x4.sub (f32x4.add (local.get $c) (v128.load offset=48 (local.get $k))) (v128.load offset=64 (local.get $k))))
        (local.set $v (v128.load offset=16 (local.get $x)))
        (local.set $r (f32x4.nearest (f32x4.div (local.get $v) (v128.load (local.get $k)))))
        (local.set $c (f32x4.pmax (f32x4.pmin (local.get $r) (v128.load offset=32 (local.get $k))) (v128.load offset=16 (local.get $k))))
        (local.set $cnt (i32x4.sub (local.get $cnt) (f32x4.ne (local.get $r) (local.get $c))))
        (local.set $d (f32x4.sub (local.get $v) (f32x4.mul (local.get $c) (v128.load (local.get $k)))))
        (local.set $e (v128.and (local.get $d) (v128.load offset=144 (local.get $acc))))
        (local.set $mxb (f32x4.pmax (local.get $mxb) (local.get $e)))
        (local.set $sa (f32x4.add (local.get $sa) (local.get $e)))
        (local.set $ss (f32x4.add (local.get $ss) (f32x4.mul (local.get $d) (local.get $d))))
        (local.set $sx (f32x4.add (local.get $sx) (f32x4.mul (local.get $v) (local.get $v))))
        (local.set $qa (i16x8.narrow_i32x4_s (local.get $qa) (i32x4.sub (f32x4.add (local.get $c) (v128.load offset=48 (local.get $k))) (v128.load offset=64 (local.get $k)))))
        (if (i32.eq (local.get $width) (i32.const 1))
          (then
            (v128.store64_lane 0 (local.get $q) (v128.xor (i8x16.narrow_i16x8_s (local.get $qa) (local.get $qa)) (v128.load offset=80 (local.get $k))))
            (local.set $q (i32.add (local.get $q) (i32.const 8))))
          (else
            (v128.store (local.get $q) (v128.xor (local.get $qa) (v128.load offset=80 (local.get $k))))
            (local.set $q (i32.add (local.get $q) (i32.const 16)))))
        (local.set $x (i32.add (local.get $x) (i32.const 32)))
        (br_if $l (i32.lt_u (local.get $x) (local.get $bend))))
      ;; the block's sums into the float64 pairs (inline: V8 does not inline wasm calls)
      (v128.store offset=48 (local.get $acc) (f64x2.add (v128.load offset=48 (local.get $acc)) (f64x2.promote_low_f32x4 (local.get $sa))))
      (v128.store offset=64 (local.get $acc) (f64x2.add (v128.load offset=64 (local.get $acc))
        (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $sa) (local.get $sa)))))
      (v128.store offset=80 (local.get $acc) (f64x2.add (v128.load offset=80 (local.get $acc)) (f64x2.promote_low_f32x4 (local.get $ss))))
      (v128.store offset=96 (local.get $acc) (f64x2.add (v128.load offset=96 (local.get $acc))
        (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $ss) (local.get $ss)))))
      (v128.store offset=112 (local.get $acc) (f64x2.add (v128.load offset=112 (local.get $acc)) (f64x2.promote_low_f32x4 (local.get $sx))))
      (v128.store offset=128 (local.get $acc) (f64x2.add (v128.load offset=128 (local.get $acc))
        (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $sx) (local.get $sx)))))
      (if (v128.any_true (v128.xor (local.get $cnt) (v128.load offset=160 (local.get $acc))))
        (then (call $blockmax (local.get $b0) (local.get $x) (local.get $k) (local.get $acc)))
        (else (local.set $mx (f32x4.pmax (local.get $mx) (local.get $mxb)))))
      (br $blk)))
    (call $maxin (local.get $acc) (local.get $mx))
    (v128.store (local.get $acc) (local.get $cnt))
    (call $tail (local.get $x) (local.get $q) (i32.and (local.get $n) (i32.const 7)) (local.get $k) (local.get $acc) (i32.const 1)))

  ;; max |e| of the vectors [$b0, $x) of a $spanr block that clipped an element, in float64
  ;; as the reference takes it, into the maxima at $acc.
  (func $blockmax (param $b0 i32) (param $x i32) (param $k i32) (param $acc i32)
    (local $v v128) (local $c v128)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $b0) (local.get $x)))
      (local.set $v (v128.load (local.get $b0)))
      (local.set $c (f32x4.pmax (f32x4.pmin (f32x4.nearest (f32x4.div (local.get $v) (v128.load (local.get $k))))
        (v128.load offset=32 (local.get $k))) (v128.load offset=16 (local.get $k))))
      (call $max64 (local.get $acc) (local.get $v) (f32x4.mul (local.get $c) (v128.load (local.get $k))))
      (local.set $b0 (i32.add (local.get $b0) (i32.const 16)))
      (br $l))))

  ;; max |x - x_hat| of four lanes in float64 (the reference's), into the maxima at $acc.
  (func $max64 (param $acc i32) (param $v v128) (param $xh v128)
    (v128.store offset=16 (local.get $acc) (f64x2.pmax (v128.load offset=16 (local.get $acc))
      (f64x2.abs (f64x2.sub (f64x2.promote_low_f32x4 (local.get $v)) (f64x2.promote_low_f32x4 (local.get $xh))))))
    (v128.store offset=32 (local.get $acc) (f64x2.pmax (v128.load offset=32 (local.get $acc))
      (f64x2.abs (f64x2.sub
        (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v)))
        (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $xh) (local.get $xh))))))))

  ;; Exact float32 maxima (four lanes) into the float64 maxima at $acc.
  (func $maxin (param $acc i32) (param $m v128)
    (v128.store offset=16 (local.get $acc) (f64x2.pmax (v128.load offset=16 (local.get $acc)) (f64x2.promote_low_f32x4 (local.get $m))))
    (v128.store offset=32 (local.get $acc) (f64x2.pmax (v128.load offset=32 (local.get $acc))
      (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $m) (local.get $m))))))

  (func $tail (param $x i32) (param $q i32) (param $n i32) (param $k i32) (param $acc i32) (param $sums i32)
    (local $width i32)
    (local.set $width (i32.load offset=100 (local.get $k)))
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $n)))
      (call $one (local.get $x) (local.get $q) (f32.load (local.get $k)) (f32.load offset=16 (local.get $k))
        (f32.load offset=32 (local.get $k)) (i32.load offset=96 (local.get $k)) (local.get $acc) (local.get $width) (local.get $sums))
      (local.set $x (i32.add (local.get $x) (i32.const 4)))
      (local.set $q (i32.add (local.get $q) (local.get $width)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l))))

  ;; The per-span part of the constant block for one scale and zero point.
  (func $setk (param $k i32) (param $s f32) (param $zp i32) (param $qmin f32) (param $qmax f32) (param $bias i32)
    (local $zpf f32)
    (local.set $zpf (f32.convert_i32_s (local.get $zp)))
    (v128.store (local.get $k) (f32x4.splat (local.get $s)))
    (v128.store offset=16 (local.get $k) (f32x4.splat (f32.sub (local.get $qmin) (local.get $zpf))))
    (v128.store offset=32 (local.get $k) (f32x4.splat (f32.sub (local.get $qmax) (local.get $zpf))))
    (v128.store offset=48 (local.get $k) (f32x4.splat (f32.convert_i32_s
      (i32.sub (i32.add (i32.const 12582912) (local.get $zp)) (local.get $bias)))))
    (i32.store offset=96 (local.get $k) (local.get $zp)))

  ;; Runs with one scale each: $rows rows of $runs runs; every run has $runLen elements except
  ;; the last of each row ($lastLen). Run j of row r uses parameter r * $prow + j from the
  ;; float32 scales at $ps and int32 zero points at $pz. $mode: 0 = 8-bit, no sums;
  ;; 1 = 8-bit with sums; 2 = 16-bit with sums. $k must hold mb, xor and width already.
  (func (export "runs") (param $mode i32) (param $x i32) (param $q i32) (param $rows i32) (param $runs i32)
        (param $runLen i32) (param $lastLen i32) (param $ps i32) (param $pz i32) (param $prow i32)
        (param $qmin f32) (param $qmax f32) (param $bias i32) (param $k i32) (param $acc i32)
    (local $r i32) (local $j i32) (local $len i32) (local $p i32) (local $width i32)
    (local.set $width (i32.load offset=100 (local.get $k)))
    (block $rows_done (loop $row
      (br_if $rows_done (i32.ge_u (local.get $r) (local.get $rows)))
      (local.set $j (i32.const 0))
      (block $runs_done (loop $run
        (br_if $runs_done (i32.ge_u (local.get $j) (local.get $runs)))
        (local.set $len (select (local.get $lastLen) (local.get $runLen)
          (i32.eq (local.get $j) (i32.sub (local.get $runs) (i32.const 1)))))
        (local.set $p (i32.shl (i32.add (i32.mul (local.get $r) (local.get $prow)) (local.get $j)) (i32.const 2)))
        (call $setk (local.get $k) (f32.load (i32.add (local.get $ps) (local.get $p)))
          (i32.load (i32.add (local.get $pz) (local.get $p))) (local.get $qmin) (local.get $qmax) (local.get $bias))
        (if (i32.eqz (local.get $mode))
          (then (call $span8 (local.get $x) (local.get $q) (local.get $len) (local.get $k) (local.get $acc)))
          (else (call $spanr (local.get $x) (local.get $q) (local.get $len) (local.get $k) (local.get $acc) (local.get $width))))
        (local.set $x (i32.add (local.get $x) (i32.shl (local.get $len) (i32.const 2))))
        (local.set $q (i32.add (local.get $q) (i32.mul (local.get $len) (local.get $width))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $run)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $row))))

  ;; Per-element parameter vectors (the per-group layout along a non-last axis, and per-channel
  ;; along the last axis): lo, hi and mz for n parameters, from their zero points. Writes whole
  ;; vectors, so up to 3 values past n (the areas have room for them).
  (func (export "prep") (param $pz i32) (param $plo i32) (param $phi i32) (param $pmz i32) (param $n i32)
        (param $qmin f32) (param $qmax f32) (param $bias i32)
    (local $i i32) (local $zp v128) (local $zpf v128)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (i32.shl (local.get $n) (i32.const 2))))
      (local.set $zp (v128.load (i32.add (local.get $pz) (local.get $i))))
      (local.set $zpf (f32x4.convert_i32x4_s (local.get $zp)))
      (v128.store (i32.add (local.get $plo) (local.get $i)) (f32x4.sub (f32x4.splat (local.get $qmin)) (local.get $zpf)))
      (v128.store (i32.add (local.get $phi) (local.get $i)) (f32x4.sub (f32x4.splat (local.get $qmax)) (local.get $zpf)))
      (v128.store (i32.add (local.get $pmz) (local.get $i)) (f32x4.convert_i32x4_s
        (i32x4.add (local.get $zp) (i32x4.splat (i32.sub (i32.const 12582912) (local.get $bias))))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $l))))

  ;; $rows rows of $len elements sharing one vector of parameters: scale at $ps, zero point
  ;; at $pz, and lo/hi/mz from "prep" at $plo/$phi/$pmz. Modes as for "runs".
  (func (export "rows") (param $mode i32) (param $x i32) (param $q i32) (param $rows i32) (param $len i32)
        (param $ps i32) (param $pz i32) (param $plo i32) (param $phi i32) (param $pmz i32) (param $k i32) (param $acc i32)
    (local $r i32) (local $i i32) (local $end i32) (local $width i32) (local $sums i32)
    (local $v v128) (local $rr v128) (local $c v128) (local $cnt v128)
    (local.set $width (i32.load offset=100 (local.get $k)))
    (local.set $sums (i32.ne (local.get $mode) (i32.const 0)))
    (local.set $end (i32.shl (i32.and (local.get $len) (i32.const -4)) (i32.const 2)))
    (block $rows_done (loop $row
      (br_if $rows_done (i32.ge_u (local.get $r) (local.get $rows)))
      (if (local.get $sums)
        (then (call $rowr (local.get $x) (local.get $q) (local.get $end) (local.get $ps) (local.get $plo) (local.get $phi)
          (local.get $pmz) (local.get $k) (local.get $acc) (local.get $width)))
        (else
          (local.set $cnt (v128.load (local.get $acc)))
          (local.set $i (i32.const 0))
          (block $done (loop $l
            (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
            (local.set $v (v128.load (i32.add (local.get $x) (local.get $i))))
            (local.set $rr (f32x4.nearest (f32x4.div (local.get $v) (v128.load (i32.add (local.get $ps) (local.get $i))))))
            (local.set $c (f32x4.pmax (f32x4.pmin (local.get $rr) (v128.load (i32.add (local.get $phi) (local.get $i))))
                                      (v128.load (i32.add (local.get $plo) (local.get $i)))))
            (local.set $cnt (i32x4.sub (local.get $cnt) (f32x4.ne (local.get $rr) (local.get $c))))
            (local.set $c (i32x4.sub (f32x4.add (local.get $c) (v128.load (i32.add (local.get $pmz) (local.get $i))))
                                     (v128.load offset=64 (local.get $k))))
            (local.set $c (i16x8.narrow_i32x4_s (local.get $c) (local.get $c)))
            (if (i32.eq (local.get $width) (i32.const 1))
              (then (v128.store32_lane 0 (i32.add (local.get $q) (i32.shr_u (local.get $i) (i32.const 2)))
                (v128.xor (i8x16.narrow_i16x8_s (local.get $c) (local.get $c)) (v128.load offset=80 (local.get $k)))))
              (else (v128.store64_lane 0 (i32.add (local.get $q) (i32.shr_u (local.get $i) (i32.const 1)))
                (v128.xor (local.get $c) (v128.load offset=80 (local.get $k))))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $l)))
          (v128.store (local.get $acc) (local.get $cnt))))
      ;; the scalar tail of this row, element by element with its own parameters
      (local.set $i (local.get $end))
      (block $tdone (loop $t
        (br_if $tdone (i32.ge_u (local.get $i) (i32.shl (local.get $len) (i32.const 2))))
        (call $one (i32.add (local.get $x) (local.get $i))
          (i32.add (local.get $q) (i32.mul (i32.shr_u (local.get $i) (i32.const 2)) (local.get $width)))
          (f32.load (i32.add (local.get $ps) (local.get $i))) (f32.load (i32.add (local.get $plo) (local.get $i)))
          (f32.load (i32.add (local.get $phi) (local.get $i))) (i32.load (i32.add (local.get $pz) (local.get $i)))
          (local.get $acc) (local.get $width) (local.get $sums))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $t)))
      (local.set $x (i32.add (local.get $x) (i32.shl (local.get $len) (i32.const 2))))
      (local.set $q (i32.add (local.get $q) (i32.mul (local.get $len) (local.get $width))))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $row))))

  ;; The whole vectors of one row of "rows" ($end bytes of x) with error sums, in float32
  ;; lanes as $spanr takes them: blocks of at most 8 vectors, a vector a step, so a term
  ;; passes through at most 8 float32 additions ((1 + u)^9 - 1 = 5.4e-7 relative).
  (func $rowr (param $x i32) (param $q i32) (param $end i32) (param $ps i32) (param $plo i32) (param $phi i32)
        (param $pmz i32) (param $k i32) (param $acc i32) (param $width i32)
    (local $i i32) (local $i0 i32) (local $bend i32)
    (local $v v128) (local $s v128) (local $rr v128) (local $c v128) (local $d v128) (local $e v128)
    (local $cnt v128) (local $mxb v128) (local $mx v128) (local $sa v128) (local $ss v128) (local $sx v128)
    (local.set $cnt (v128.load (local.get $acc)))
    (block $done (loop $blk
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      (local.set $i0 (local.get $i))
      (local.set $bend (select (local.get $end) (i32.add (local.get $i) (i32.const 128))
        (i32.lt_u (i32.sub (local.get $end) (local.get $i)) (i32.const 128))))
      (v128.store offset=160 (local.get $acc) (local.get $cnt))
      (local.set $mxb (v128.const i32x4 0 0 0 0))
      (local.set $sa (v128.const i32x4 0 0 0 0))
      (local.set $ss (v128.const i32x4 0 0 0 0))
      (local.set $sx (v128.const i32x4 0 0 0 0))
      (loop $l
        (local.set $v (v128.load (i32.add (local.get $x) (local.get $i))))
        (local.set $s (v128.load (i32.add (local.get $ps) (local.get $i))))
        (local.set $rr (f32x4.nearest (f32x4.div (local.get $v) (local.get $s))))
        (local.set $c (f32x4.pmax (f32x4.pmin (local.get $rr) (v128.load (i32.add (local.get $phi) (local.get $i))))
                                  (v128.load (i32.add (local.get $plo) (local.get $i)))))
        (local.set $cnt (i32x4.sub (local.get $cnt) (f32x4.ne (local.get $rr) (local.get $c))))
        (local.set $d (f32x4.sub (local.get $v) (f32x4.mul (local.get $c) (local.get $s))))
        (local.set $e (v128.and (local.get $d) (v128.load offset=144 (local.get $acc))))
        (local.set $mxb (f32x4.pmax (local.get $mxb) (local.get $e)))
        (local.set $sa (f32x4.add (local.get $sa) (local.get $e)))
        (local.set $ss (f32x4.add (local.get $ss) (f32x4.mul (local.get $d) (local.get $d))))
        (local.set $sx (f32x4.add (local.get $sx) (f32x4.mul (local.get $v) (local.get $v))))
        (local.set $c (i32x4.sub (f32x4.add (local.get $c) (v128.load (i32.add (local.get $pmz) (local.get $i))))
                                 (v128.load offset=64 (local.get $k))))
        (local.set $c (i16x8.narrow_i32x4_s (local.get $c) (local.get $c)))
        (if (i32.eq (local.get $width) (i32.const 1))
          (then (v128.store32_lane 0 (i32.add (local.get $q) (i32.shr_u (local.get $i) (i32.const 2)))
            (v128.xor (i8x16.narrow_i16x8_s (local.get $c) (local.get $c)) (v128.load offset=80 (local.get $k)))))
          (else (v128.store64_lane 0 (i32.add (local.get $q) (i32.shr_u (local.get $i) (i32.const 1)))
            (v128.xor (local.get $c) (v128.load offset=80 (local.get $k))))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br_if $l (i32.lt_u (local.get $i) (local.get $bend))))
      (v128.store offset=48 (local.get $acc) (f64x2.add (v128.load offset=48 (local.get $acc)) (f64x2.promote_low_f32x4 (local.get $sa))))
      (v128.store offset=64 (local.get $acc) (f64x2.add (v128.load offset=64 (local.get $acc))
        (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $sa) (local.get $sa)))))
      (v128.store offset=80 (local.get $acc) (f64x2.add (v128.load offset=80 (local.get $acc)) (f64x2.promote_low_f32x4 (local.get $ss))))
      (v128.store offset=96 (local.get $acc) (f64x2.add (v128.load offset=96 (local.get $acc))
        (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $ss) (local.get $ss)))))
      (v128.store offset=112 (local.get $acc) (f64x2.add (v128.load offset=112 (local.get $acc)) (f64x2.promote_low_f32x4 (local.get $sx))))
      (v128.store offset=128 (local.get $acc) (f64x2.add (v128.load offset=128 (local.get $acc))
        (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $sx) (local.get $sx)))))
      (if (v128.any_true (v128.xor (local.get $cnt) (v128.load offset=160 (local.get $acc))))
        (then
          ;; a clipped element in the block: its max in float64, vector by vector
          (block $mdone (loop $m
            (br_if $mdone (i32.ge_u (local.get $i0) (local.get $i)))
            (local.set $v (v128.load (i32.add (local.get $x) (local.get $i0))))
            (local.set $s (v128.load (i32.add (local.get $ps) (local.get $i0))))
            (local.set $c (f32x4.pmax (f32x4.pmin (f32x4.nearest (f32x4.div (local.get $v) (local.get $s)))
              (v128.load (i32.add (local.get $phi) (local.get $i0)))) (v128.load (i32.add (local.get $plo) (local.get $i0)))))
            (call $max64 (local.get $acc) (local.get $v) (f32x4.mul (local.get $c) (local.get $s)))
            (local.set $i0 (i32.add (local.get $i0) (i32.const 16)))
            (br $m))))
        (else (local.set $mx (f32x4.pmax (local.get $mx) (local.get $mxb)))))
      (br $blk)))
    (call $maxin (local.get $acc) (local.get $mx))
    (v128.store (local.get $acc) (local.get $cnt)))

  ;; Min and max of one run (n >= 1 values at $x), as calibrate.wat computes them, stored
  ;; at $plo and $phi.
  (func $runrange (param $x i32) (param $n i32) (param $plo i32) (param $phi i32)
    (local $end i32) (local $end4 i32) (local $end8 i32) (local $lo v128) (local $hi v128) (local $lo2 v128) (local $hi2 v128)
    (local $v v128) (local $m f32) (local $lane f32)
    (local.set $lo (v128.const f32x4 inf inf inf inf))
    (local.set $hi (v128.const f32x4 -inf -inf -inf -inf))
    (local.set $end4 (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (local.set $end (i32.add (local.get $x) (i32.shl (local.get $n) (i32.const 2))))
    ;; Two vectors a step into two pairs of accumulators: one pair's min/max latency chain
    ;; would bound the loop. (Which of +0 and -0 a range keeps does not change parameters.)
    (local.set $lo2 (local.get $lo))
    (local.set $hi2 (local.get $hi))
    (local.set $end8 (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -8)) (i32.const 2))))
    (block $done8 (loop $l8
      (br_if $done8 (i32.ge_u (local.get $x) (local.get $end8)))
      (local.set $v (v128.load (local.get $x)))
      (local.set $lo (f32x4.pmin (local.get $lo) (local.get $v)))
      (local.set $hi (f32x4.pmax (local.get $hi) (local.get $v)))
      (local.set $v (v128.load offset=16 (local.get $x)))
      (local.set $lo2 (f32x4.pmin (local.get $lo2) (local.get $v)))
      (local.set $hi2 (f32x4.pmax (local.get $hi2) (local.get $v)))
      (local.set $x (i32.add (local.get $x) (i32.const 32)))
      (br $l8)))
    (local.set $lo (f32x4.pmin (local.get $lo) (local.get $lo2)))
    (local.set $hi (f32x4.pmax (local.get $hi) (local.get $hi2)))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $x) (local.get $end4)))
      (local.set $v (v128.load (local.get $x)))
      (local.set $lo (f32x4.pmin (local.get $lo) (local.get $v)))
      (local.set $hi (f32x4.pmax (local.get $hi) (local.get $v)))
      (local.set $x (i32.add (local.get $x) (i32.const 16)))
      (br $l)))
    (local.set $m (f32x4.extract_lane 0 (local.get $lo)))
    (local.set $lane (f32x4.extract_lane 1 (local.get $lo)))
    (local.set $m (select (local.get $lane) (local.get $m) (f32.lt (local.get $lane) (local.get $m))))
    (local.set $lane (f32x4.extract_lane 2 (local.get $lo)))
    (local.set $m (select (local.get $lane) (local.get $m) (f32.lt (local.get $lane) (local.get $m))))
    (local.set $lane (f32x4.extract_lane 3 (local.get $lo)))
    (local.set $m (select (local.get $lane) (local.get $m) (f32.lt (local.get $lane) (local.get $m))))
    (f32.store (local.get $plo) (local.get $m))
    (local.set $m (f32x4.extract_lane 0 (local.get $hi)))
    (local.set $lane (f32x4.extract_lane 1 (local.get $hi)))
    (local.set $m (select (local.get $lane) (local.get $m) (f32.gt (local.get $lane) (local.get $m))))
    (local.set $lane (f32x4.extract_lane 2 (local.get $hi)))
    (local.set $m (select (local.get $lane) (local.get $m) (f32.gt (local.get $lane) (local.get $m))))
    (local.set $lane (f32x4.extract_lane 3 (local.get $hi)))
    (local.set $m (select (local.get $lane) (local.get $m) (f32.gt (local.get $lane) (local.get $m))))
    (f32.store (local.get $phi) (local.get $m))
    (block $tdone (loop $t
      (br_if $tdone (i32.ge_u (local.get $x) (local.get $end)))
      (local.set $lane (f32.load (local.get $x)))
      (if (f32.lt (local.get $lane) (f32.load (local.get $plo))) (then (f32.store (local.get $plo) (local.get $lane))))
      (if (f32.gt (local.get $lane) (f32.load (local.get $phi))) (then (f32.store (local.get $phi) (local.get $lane))))
      (local.set $x (i32.add (local.get $x) (i32.const 4)))
      (br $t))))

  ;; calibrate.ts paramsFromRange on the min-max range [$lo, $hi], operation for operation:
  ;; each float32 step of the reference is one f32 instruction here (a float64 operation
  ;; rounded to float32 equals the float32 operation for + - * /), and its float64 fallback
  ;; for a range wider than float32 is done in f64. Writes the scale at $ps and zero point at $pz.
  (func $params (export "params") (param $ps i32) (param $pz i32) (param $lo f32) (param $hi f32) (param $sym i32) (param $qmin f32) (param $qmax f32)
    (local $scale f32) (local $steps f32) (local $zp f32)
    (if (local.get $sym)
      (then
        (local.set $scale (f32.div (f32.max (f32.abs (local.get $lo)) (f32.abs (local.get $hi))) (local.get $qmax)))
        (f32.store (local.get $ps) (select (local.get $scale) (f32.const 1) (f32.gt (local.get $scale) (f32.const 0))))
        (i32.store (local.get $pz) (i32.const 0))
        (return)))
    (local.set $lo (f32.min (local.get $lo) (f32.const 0)))
    (local.set $hi (f32.max (local.get $hi) (f32.const 0)))
    (local.set $steps (f32.sub (local.get $qmax) (local.get $qmin)))
    (local.set $scale (f32.div (f32.sub (local.get $hi) (local.get $lo)) (local.get $steps)))
    (if (f32.ne (f32.sub (local.get $scale) (local.get $scale)) (f32.const 0))
      (then (local.set $scale (f32.demote_f64 (f64.sub
        (f64.div (f64.promote_f32 (local.get $hi)) (f64.promote_f32 (local.get $steps)))
        (f64.div (f64.promote_f32 (local.get $lo)) (f64.promote_f32 (local.get $steps))))))))
    (local.set $scale (select (local.get $scale) (f32.const 1) (f32.gt (local.get $scale) (f32.const 0))))
    (local.set $zp (f32.sub (local.get $qmin) (f32.nearest (f32.div (local.get $lo) (local.get $scale)))))
    (local.set $zp (f32.min (f32.max (local.get $zp) (local.get $qmin)) (local.get $qmax)))
    (f32.store (local.get $ps) (local.get $scale))
    (i32.store (local.get $pz) (i32.trunc_sat_f32_s (local.get $zp))))

  ;; "runs" with min-max calibration fused in: one call's runs are calibrated, then quantized
  ;; while the call's values (at most 256 KiB) are still in cache: one pass over memory. Valid
  ;; only where every parameter's values are exactly one run of one call (per group along the
  ;; last axis, per channel along the first). The scales and zero points are written to
  ;; $ps / $pz at index r * $prow + j; $plo / $phi take the call's ranges (one float each per
  ;; run). Three loops: the ranges (a stream of loads and min/max), then every run's scale and
  ;; zero point (scalar work whose division chains overlap across runs), then quantization.
  ;; Interleaving the scalar work with the stream made small groups wait on it group by group.
  (func (export "fused") (param $mode i32) (param $sym i32) (param $x i32) (param $q i32) (param $rows i32) (param $runs i32)
        (param $runLen i32) (param $lastLen i32) (param $ps i32) (param $pz i32) (param $prow i32)
        (param $qmin f32) (param $qmax f32) (param $bias i32) (param $k i32) (param $acc i32) (param $plo i32) (param $phi i32)
    (local $r i32) (local $j i32) (local $len i32) (local $p i32) (local $width i32) (local $x0 i32) (local $i i32)
    (local.set $width (i32.load offset=100 (local.get $k)))
    (local.set $x0 (local.get $x))
    (block $rows_done (loop $row
      (br_if $rows_done (i32.ge_u (local.get $r) (local.get $rows)))
      (local.set $j (i32.const 0))
      (block $runs_done (loop $run
        (br_if $runs_done (i32.ge_u (local.get $j) (local.get $runs)))
        (local.set $len (select (local.get $lastLen) (local.get $runLen)
          (i32.eq (local.get $j) (i32.sub (local.get $runs) (i32.const 1)))))
        (call $runrange (local.get $x) (local.get $len)
          (i32.add (local.get $plo) (local.get $i)) (i32.add (local.get $phi) (local.get $i)))
        (local.set $x (i32.add (local.get $x) (i32.shl (local.get $len) (i32.const 2))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $run)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $row)))
    (local.set $i (i32.const 0))
    (local.set $r (i32.const 0))
    (block $rows_done1 (loop $row1
      (br_if $rows_done1 (i32.ge_u (local.get $r) (local.get $rows)))
      (local.set $j (i32.const 0))
      (block $runs_done1 (loop $run1
        (br_if $runs_done1 (i32.ge_u (local.get $j) (local.get $runs)))
        (local.set $p (i32.shl (i32.add (i32.mul (local.get $r) (local.get $prow)) (local.get $j)) (i32.const 2)))
        (call $params (i32.add (local.get $ps) (local.get $p)) (i32.add (local.get $pz) (local.get $p))
          (f32.load (i32.add (local.get $plo) (local.get $i))) (f32.load (i32.add (local.get $phi) (local.get $i)))
          (local.get $sym) (local.get $qmin) (local.get $qmax))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $run1)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $row1)))
    (local.set $x (local.get $x0))
    (local.set $r (i32.const 0))
    (block $rows_done2 (loop $row2
      (br_if $rows_done2 (i32.ge_u (local.get $r) (local.get $rows)))
      (local.set $j (i32.const 0))
      (block $runs_done2 (loop $run2
        (br_if $runs_done2 (i32.ge_u (local.get $j) (local.get $runs)))
        (local.set $len (select (local.get $lastLen) (local.get $runLen)
          (i32.eq (local.get $j) (i32.sub (local.get $runs) (i32.const 1)))))
        (local.set $p (i32.shl (i32.add (i32.mul (local.get $r) (local.get $prow)) (local.get $j)) (i32.const 2)))
        (call $setk (local.get $k) (f32.load (i32.add (local.get $ps) (local.get $p)))
          (i32.load (i32.add (local.get $pz) (local.get $p))) (local.get $qmin) (local.get $qmax) (local.get $bias))
        (if (i32.eqz (local.get $mode))
          (then (call $span8 (local.get $x) (local.get $q) (local.get $len) (local.get $k) (local.get $acc)))
          (else (call $spanr (local.get $x) (local.get $q) (local.get $len) (local.get $k) (local.get $acc) (local.get $width))))
        (local.set $x (i32.add (local.get $x) (i32.shl (local.get $len) (i32.const 2))))
        (local.set $q (i32.add (local.get $q) (i32.mul (local.get $len) (local.get $width))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $run2)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $row2))))
)

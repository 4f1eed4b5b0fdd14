;; The MSE clip search: candidates' constants from clip ratios, the exact squared error of
;; candidates over staged values, a histogram of counts, and a candidate's error estimated
;; from that histogram.
;; Candidate block $k (as quantize.wat): +0 scale, +16 lo = q_min - zp, +32 hi = q_max - zp
;; (4 lanes each). Constants are re-read inside loops for the reason given in quantize.wat.
(module
  (import "env" "memory" (memory 1))
  ;; quantize.wat's $params (paramsFromRange): a range -> scale at $ps, zero point at $pz.
  (import "env" "params" (func $params (param i32 i32 f32 f32 i32 f32 f32)))

  ;; The blocks of $count candidates at the clip ratios at $rs (float64 each): candidate c is
  ;; the range [f32(lo * r), f32(hi * r)] (calibrate.ts shrinkRange) made into a scale and
  ;; zero point by $params, its block at $cands + 48 c. $tmp: 8 bytes of scratch.
  (func (export "candidates") (param $rs i32) (param $count i32) (param $lo f32) (param $hi f32) (param $sym i32)
        (param $qmin f32) (param $qmax f32) (param $cands i32) (param $tmp i32)
    (local $c i32) (local $r f64) (local $zp f32) (local $at i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $c) (local.get $count)))
      (local.set $r (f64.load (i32.add (local.get $rs) (i32.shl (local.get $c) (i32.const 3)))))
      (call $params (local.get $tmp) (i32.add (local.get $tmp) (i32.const 4))
        (f32.demote_f64 (f64.mul (f64.promote_f32 (local.get $lo)) (local.get $r)))
        (f32.demote_f64 (f64.mul (f64.promote_f32 (local.get $hi)) (local.get $r)))
        (local.get $sym) (local.get $qmin) (local.get $qmax))
      (local.set $at (i32.add (local.get $cands) (i32.mul (local.get $c) (i32.const 48))))
      (local.set $zp (f32.convert_i32_s (i32.load offset=4 (local.get $tmp))))
      (v128.store (local.get $at) (f32x4.splat (f32.load (local.get $tmp))))
      (v128.store offset=16 (local.get $at) (f32x4.splat (f32.sub (local.get $qmin) (local.get $zp))))
      (v128.store offset=32 (local.get $at) (f32x4.splat (f32.sub (local.get $qmax) (local.get $zp))))
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (br $l))))

  ;; sum of (x - x_hat)^2 over n values at $x, added to the f64x2 pair at $acc (+0, +16).
  ;; Terms exactly as quantize.wat's (float64 of float32 values); only the order of the sum differs.
  (func $sse (export "sse") (param $x i32) (param $n i32) (param $k i32) (param $acc i32)
    (local $end i32) (local $v v128) (local $xh v128) (local $e v128) (local $s1 v128) (local $s2 v128)
    (local $f f32) (local $c f32) (local $d f64)
    (local.set $s1 (v128.load (local.get $acc)))
    (local.set $s2 (v128.load offset=16 (local.get $acc)))
    (local.set $end (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
      (local.set $v (v128.load (local.get $x)))
      (local.set $xh (f32x4.mul (v128.load (local.get $k))
        (f32x4.pmax (f32x4.pmin (f32x4.nearest (f32x4.div (local.get $v) (v128.load (local.get $k))))
                                (v128.load offset=32 (local.get $k)))
                    (v128.load offset=16 (local.get $k)))))
      (local.set $e (f64x2.sub (f64x2.promote_low_f32x4 (local.get $v)) (f64x2.promote_low_f32x4 (local.get $xh))))
      (local.set $s1 (f64x2.add (local.get $s1) (f64x2.mul (local.get $e) (local.get $e))))
      (local.set $e (f64x2.sub
        (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v)))
        (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $xh) (local.get $xh)))))
      (local.set $s2 (f64x2.add (local.get $s2) (f64x2.mul (local.get $e) (local.get $e))))
      (local.set $x (i32.add (local.get $x) (i32.const 16)))
      (br $l)))
    (local.set $end (i32.add (local.get $end) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 2))))
    (block $tdone (loop $t
      (br_if $tdone (i32.ge_u (local.get $x) (local.get $end)))
      (local.set $f (f32.load (local.get $x)))
      (local.set $c (f32.nearest (f32.div (local.get $f) (f32.load (local.get $k)))))
      (local.set $c (select (f32.load offset=32 (local.get $k)) (local.get $c) (f32.lt (f32.load offset=32 (local.get $k)) (local.get $c))))
      (local.set $c (select (f32.load offset=16 (local.get $k)) (local.get $c) (f32.lt (local.get $c) (f32.load offset=16 (local.get $k)))))
      (local.set $d (f64.sub (f64.promote_f32 (local.get $f)) (f64.promote_f32 (f32.mul (local.get $c) (f32.load (local.get $k))))))
      (local.set $s1 (f64x2.replace_lane 0 (local.get $s1) (f64.add (f64x2.extract_lane 0 (local.get $s1)) (f64.mul (local.get $d) (local.get $d)))))
      (local.set $x (i32.add (local.get $x) (i32.const 4)))
      (br $t)))
    (v128.store (local.get $acc) (local.get $s1))
    (v128.store offset=16 (local.get $acc) (local.get $s2)))

  ;; sse for $count candidates over the same values: candidate c's block at $cands + 48 c, its
  ;; pair of sums at $acc + 32 c. One call per staged piece instead of one per candidate: for
  ;; small groups the calls cost more than the arithmetic.
  (func (export "sseMany") (param $x i32) (param $n i32) (param $cands i32) (param $count i32) (param $acc i32)
    (local $c i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $c) (local.get $count)))
      (call $sse (local.get $x) (local.get $n) (i32.add (local.get $cands) (i32.mul (local.get $c) (i32.const 48)))
        (i32.add (local.get $acc) (i32.shl (local.get $c) (i32.const 5))))
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (br $l))))

  ;; Counts of n values at $x in $bins equal bins from $lo, bin = trunc((v - lo) * inv), the
  ;; top value folded into the last bin. Counts are uint32 at $counts.
  (func (export "hist") (param $x i32) (param $n i32) (param $lo f32) (param $inv f32) (param $bins i32) (param $counts i32)
    (local $end i32) (local $b v128) (local $last i32) (local $i i32)
    (local.set $last (i32.sub (local.get $bins) (i32.const 1)))
    (local.set $end (i32.add (local.get $x) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $x) (local.get $end)))
      (local.set $b (i32x4.shl (i32x4.min_s (i32x4.trunc_sat_f32x4_s
        (f32x4.mul (f32x4.sub (v128.load (local.get $x)) (f32x4.splat (local.get $lo))) (f32x4.splat (local.get $inv))))
        (i32x4.splat (local.get $last))) (i32.const 2)))
      (local.set $i (i32.add (local.get $counts) (i32x4.extract_lane 0 (local.get $b))))
      (i32.store (local.get $i) (i32.add (i32.load (local.get $i)) (i32.const 1)))
      (local.set $i (i32.add (local.get $counts) (i32x4.extract_lane 1 (local.get $b))))
      (i32.store (local.get $i) (i32.add (i32.load (local.get $i)) (i32.const 1)))
      (local.set $i (i32.add (local.get $counts) (i32x4.extract_lane 2 (local.get $b))))
      (i32.store (local.get $i) (i32.add (i32.load (local.get $i)) (i32.const 1)))
      (local.set $i (i32.add (local.get $counts) (i32x4.extract_lane 3 (local.get $b))))
      (i32.store (local.get $i) (i32.add (i32.load (local.get $i)) (i32.const 1)))
      (local.set $x (i32.add (local.get $x) (i32.const 16)))
      (br $l)))
    (local.set $end (i32.add (local.get $end) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 2))))
    (block $tdone (loop $t
      (br_if $tdone (i32.ge_u (local.get $x) (local.get $end)))
      (local.set $i (i32.trunc_sat_f32_s (f32.mul (f32.sub (f32.load (local.get $x)) (local.get $lo)) (local.get $inv))))
      (local.set $i (select (local.get $last) (local.get $i) (i32.gt_s (local.get $i) (local.get $last))))
      (local.set $i (i32.add (local.get $counts) (i32.shl (local.get $i) (i32.const 2))))
      (i32.store (local.get $i) (i32.add (i32.load (local.get $i)) (i32.const 1)))
      (local.set $x (i32.add (local.get $x) (i32.const 4)))
      (br $t))))

;; Estimated sum of squared errors of the candidate at $k over the histogram: each bin's
  ;; values are taken as spread evenly around its centre, so a bin contributes
  ;; count * ((centre - x_hat(centre))^2 + min(w, scale)^2 / 12). $bins is a multiple of 4.
  ;; The squares are taken in float64: float32 overflows for ranges past ~1e19.
  (func (export "hscore") (param $counts i32) (param $bins i32) (param $lo f32) (param $w f32) (param $k i32) (result f64)
    (local $i i32) (local $end i32) (local $centre v128) (local $d v128) (local $c v128) (local $n v128) (local $e v128)
    (local $acc v128) (local $acc2 v128) (local $spread f64)
    (local.set $spread (f64.promote_f32 (f32.min (local.get $w) (f32.load (local.get $k)))))
    (local.set $spread (f64.div (f64.mul (local.get $spread) (local.get $spread)) (f64.const 12)))
    ;; lane l of the first step holds bin l; the centre is lo + (bin + 0.5) * w
    (local.set $c (v128.const f32x4 0.5 1.5 2.5 3.5))
    (local.set $end (i32.add (local.get $counts) (i32.shl (local.get $bins) (i32.const 2))))
    (local.set $i (local.get $counts))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
      (local.set $centre (f32x4.add (f32x4.splat (local.get $lo)) (f32x4.mul (local.get $c) (f32x4.splat (local.get $w)))))
      (local.set $d (f32x4.sub (local.get $centre) (f32x4.mul (v128.load (local.get $k))
        (f32x4.pmax (f32x4.pmin (f32x4.nearest (f32x4.div (local.get $centre) (v128.load (local.get $k))))
                                (v128.load offset=32 (local.get $k)))
                    (v128.load offset=16 (local.get $k))))))
      (local.set $n (v128.load (local.get $i)))
      (local.set $e (f64x2.promote_low_f32x4 (local.get $d)))
      (local.set $acc (f64x2.add (local.get $acc) (f64x2.mul (f64x2.convert_low_i32x4_u (local.get $n))
        (f64x2.add (f64x2.mul (local.get $e) (local.get $e)) (f64x2.splat (local.get $spread))))))
      (local.set $e (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $d) (local.get $d))))
      (local.set $acc2 (f64x2.add (local.get $acc2) (f64x2.mul
        (f64x2.convert_low_i32x4_u (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $n) (local.get $n)))
        (f64x2.add (f64x2.mul (local.get $e) (local.get $e)) (f64x2.splat (local.get $spread))))))
      (local.set $c (f32x4.add (local.get $c) (v128.const f32x4 4 4 4 4)))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br $l)))
    (f64.add (f64.add (f64x2.extract_lane 0 (local.get $acc)) (f64x2.extract_lane 1 (local.get $acc)))
             (f64.add (f64x2.extract_lane 0 (local.get $acc2)) (f64x2.extract_lane 1 (local.get $acc2)))))
)

;; hqq (methods/hqq.ts hqqGroup) for four groups of n values at a time, one group per lane,
;; as lsq.wat: each lane's sums are the reference's operations in the reference's order, so
;; the parameters come out bit for bit. The Lp shrink's power is JavaScript's own (the import
;; "pow", called only for the errors above the threshold below which the shrink is 0), since
;; WebAssembly has no pow and another one would round differently.
;;
;; Per call: $units units of 4 groups; group g's values are n float32 at $vals + 4·offs[g],
;; rs[g] / rz[g] its round-to-nearest scale (f32) and zero point (i32); the best parameters
;; seen go to os[g] / oz[g]. $tab: per iteration (at most $iters) β and the threshold (f64
;; pairs). $y = p − 1, the power's exponent. $u: scratch, 64 bytes + 16·n (the rows).
(module
  (import "env" "memory" (memory 1))
  (import "env" "pow" (func $pow (param f64 f64) (result f64)))
  ;; Passes over a unit's rows and powers taken so far, for the bench's bound.
  (global $passes (export "passes") (mut i32) (i32.const 0))
  (global $powers (export "powers") (mut i32) (i32.const 0))

  (func $m32 (param $a v128) (param $b v128) (result v128)
    (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $a) (local.get $b)))
  (func $f32of (param $a v128) (param $b v128) (result v128)
    (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
      (f32x4.demote_f64x2_zero (local.get $a)) (f32x4.demote_f64x2_zero (local.get $b))))

  ;; v − shrink_lp(e) for one lane: |e| − |e|^(p−1)/β, when positive, with e's sign.
  (func $shrunk (param $v f64) (param $e f64) (param $y f64) (param $beta f64) (result f64)
    (local $a f64) (local $r f64)
    (global.set $powers (i32.add (global.get $powers) (i32.const 1)))
    (local.set $a (f64.abs (local.get $e)))
    (local.set $r (f64.sub (local.get $a) (f64.div (call $pow (local.get $a) (local.get $y)) (local.get $beta))))
    (if (result f64) (f64.gt (local.get $r) (f64.const 0))
      (then (f64.sub (local.get $v) (f64.copysign (local.get $r) (local.get $e))))
      (else (local.get $v))))

  ;; t = x, or x − shrink(e) in the lanes of $big (|e| at or above the threshold, lanes 0-1 of
  ;; the pair); called only when some lane is (most errors are below it).
  (func $target (param $v v128) (param $e v128) (param $big v128) (param $y f64) (param $beta f64) (result v128)
    (local $t v128)
    (local.set $t (local.get $v))
    (if (i32x4.extract_lane 0 (local.get $big)) (then
      (local.set $t (f64x2.replace_lane 0 (local.get $t)
        (call $shrunk (f64x2.extract_lane 0 (local.get $v)) (f64x2.extract_lane 0 (local.get $e)) (local.get $y) (local.get $beta))))))
    (if (i32x4.extract_lane 2 (local.get $big)) (then
      (local.set $t (f64x2.replace_lane 1 (local.get $t)
        (call $shrunk (f64x2.extract_lane 1 (local.get $v)) (f64x2.extract_lane 1 (local.get $e)) (local.get $y) (local.get $beta))))))
    (local.get $t))

  (func (export "hqq") (param $units i32) (param $n i32) (param $vals i32) (param $offs i32) (param $rs i32) (param $rz i32)
        (param $os i32) (param $oz i32) (param $tab i32) (param $iters i32) (param $y f64) (param $sym i32)
        (param $qmin f32) (param $qmax f32) (param $u i32)
    (local $k i32) (local $g i32) (local $it i32) (local $i i32) (local $xs i32) (local $end i32)
    (local $p0 i32) (local $p1 i32) (local $p2 i32) (local $p3 i32)
    (local $beta f64) (local $tiny f64) (local $nf v128)
    (local $scale v128) (local $z0 v128) (local $z1 v128) (local $zp v128) (local $act v128)
    (local $bs v128) (local $bz v128) (local $be0 v128) (local $be1 v128) (local $lo v128) (local $hi v128)
    (local $v v128) (local $q v128) (local $r v128) (local $a v128) (local $b v128) (local $e v128) (local $t v128)
    (local $err0 v128) (local $err1 v128) (local $sq0 v128) (local $sq1 v128) (local $st0 v128) (local $st1 v128)
    (local $sqt0 v128) (local $sqt1 v128) (local $stt0 v128) (local $stt1 v128)
    (local $live0 v128) (local $live1 v128) (local $big v128) (local $tinyv v128) (local $ok v128) (local $inv0 v128) (local $inv1 v128) (local $mq v128) (local $mt v128) (local $next v128)
    (local.set $nf (f64x2.splat (f64.convert_i32_u (local.get $n))))
    (local.set $xs (i32.add (local.get $u) (i32.const 64)))
    (block $done (loop $each
      (br_if $done (i32.ge_u (local.get $k) (local.get $units)))
      (local.set $g (i32.shl (local.get $k) (i32.const 4)))
      ;; the rows: element i of the four groups
      (local.set $p0 (i32.add (local.get $vals) (i32.shl (i32.load (i32.add (local.get $offs) (local.get $g))) (i32.const 2))))
      (local.set $p1 (i32.add (local.get $vals) (i32.shl (i32.load offset=4 (i32.add (local.get $offs) (local.get $g))) (i32.const 2))))
      (local.set $p2 (i32.add (local.get $vals) (i32.shl (i32.load offset=8 (i32.add (local.get $offs) (local.get $g))) (i32.const 2))))
      (local.set $p3 (i32.add (local.get $vals) (i32.shl (i32.load offset=12 (i32.add (local.get $offs) (local.get $g))) (i32.const 2))))
      (local.set $i (local.get $xs))
      (local.set $end (i32.add (local.get $xs) (i32.shl (local.get $n) (i32.const 4))))
      (block $rdone (loop $rows
        (br_if $rdone (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $v (v128.load32_zero (local.get $p0)))
        (local.set $v (v128.load32_lane 1 (local.get $p1) (local.get $v)))
        (local.set $v (v128.load32_lane 2 (local.get $p2) (local.get $v)))
        (v128.store (local.get $i) (v128.load32_lane 3 (local.get $p3) (local.get $v)))
        (local.set $p0 (i32.add (local.get $p0) (i32.const 4)))
        (local.set $p1 (i32.add (local.get $p1) (i32.const 4)))
        (local.set $p2 (i32.add (local.get $p2) (i32.const 4)))
        (local.set $p3 (i32.add (local.get $p3) (i32.const 4)))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $rows)))
      ;; the start: round-to-nearest; best error +Infinity
      (local.set $scale (v128.load (i32.add (local.get $rs) (local.get $g))))
      (local.set $zp (f32x4.convert_i32x4_s (v128.load (i32.add (local.get $rz) (local.get $g)))))
      (local.set $z0 (f64x2.promote_low_f32x4 (local.get $zp)))
      (local.set $z1 (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $zp) (local.get $zp))))
      (local.set $bs (local.get $scale))
      (local.set $bz (local.get $zp))
      (local.set $be0 (f64x2.splat (f64.const inf)))
      (local.set $be1 (f64x2.splat (f64.const inf)))
      (local.set $act (v128.const i32x4 -1 -1 -1 -1))
      (local.set $it (i32.const 0))
      (block $idone (loop $iter
        (br_if $idone (i32.ge_u (local.get $it) (local.get $iters)))
        (br_if $idone (i32.eqz (v128.any_true (local.get $act))))
        (local.set $beta (f64.load (i32.add (local.get $tab) (i32.shl (local.get $it) (i32.const 4)))))
        (local.set $tiny (f64.load offset=8 (i32.add (local.get $tab) (i32.shl (local.get $it) (i32.const 4)))))
        ;; zp = clamp(round(z), q_min, q_max) (symmetric: 0)
        (if (local.get $sym) (then (local.set $zp (v128.const f32x4 0 0 0 0)))
        (else
          (local.set $zp (f32x4.pmin (f32x4.pmax (call $f32of (f64x2.nearest (local.get $z0)) (f64x2.nearest (local.get $z1)))
            (f32x4.splat (local.get $qmin))) (f32x4.splat (local.get $qmax))))))
        (local.set $tinyv (f64x2.splat (local.get $tiny)))
        (local.set $live0 (i64x2.extend_low_i32x4_s (local.get $act)))
        (local.set $live1 (i64x2.extend_high_i32x4_s (local.get $act)))
        (local.set $lo (f32x4.sub (f32x4.splat (local.get $qmin)) (local.get $zp)))
        (local.set $hi (f32x4.sub (f32x4.splat (local.get $qmax)) (local.get $zp)))
        (local.set $err0 (v128.const i64x2 0 0)) (local.set $err1 (v128.const i64x2 0 0))
        (local.set $sq0 (v128.const i64x2 0 0)) (local.set $sq1 (v128.const i64x2 0 0))
        (local.set $st0 (v128.const i64x2 0 0)) (local.set $st1 (v128.const i64x2 0 0))
        (local.set $sqt0 (v128.const i64x2 0 0)) (local.set $sqt1 (v128.const i64x2 0 0))
        (local.set $stt0 (v128.const i64x2 0 0)) (local.set $stt1 (v128.const i64x2 0 0))
        (global.set $passes (i32.add (global.get $passes) (i32.const 1)))
        (local.set $i (local.get $xs))
        (block $pdone (loop $pass
          (br_if $pdone (i32.ge_u (local.get $i) (local.get $end)))
          (local.set $v (v128.load (local.get $i)))
          ;; l = clamp(round(f32(x / scale)), q_min − zp, q_max − zp), q = l + zp, x̂ = f32(l·scale) saturated
          (local.set $r (f32x4.pmin (f32x4.pmax (f32x4.nearest (f32x4.div (local.get $v) (local.get $scale))) (local.get $lo)) (local.get $hi)))
          (local.set $q (f32x4.add (local.get $r) (local.get $zp)))
          (local.set $r (f32x4.pmin (f32x4.pmax (f32x4.mul (local.get $r) (local.get $scale))
            (v128.const f32x4 -0x1.fffffep+127 -0x1.fffffep+127 -0x1.fffffep+127 -0x1.fffffep+127))
            (v128.const f32x4 0x1.fffffep+127 0x1.fffffep+127 0x1.fffffep+127 0x1.fffffep+127)))
          ;; lanes 0-1
          (local.set $a (f64x2.promote_low_f32x4 (local.get $v)))
          (local.set $b (f64x2.promote_low_f32x4 (local.get $q)))
          (local.set $e (f64x2.sub (local.get $a) (f64x2.promote_low_f32x4 (local.get $r))))
          (local.set $err0 (f64x2.add (local.get $err0) (f64x2.mul (local.get $e) (local.get $e))))
          ;; a stopped group's t is never used: no power is taken for it
          (local.set $big (v128.andnot (local.get $live0) (f64x2.lt (f64x2.abs (local.get $e)) (local.get $tinyv))))
          (local.set $t (local.get $a))
          (if (v128.any_true (local.get $big)) (then
            (local.set $t (call $target (local.get $a) (local.get $e) (local.get $big) (local.get $y) (local.get $beta)))))
          (local.set $sq0 (f64x2.add (local.get $sq0) (local.get $b)))
          (local.set $st0 (f64x2.add (local.get $st0) (local.get $t)))
          (local.set $sqt0 (f64x2.add (local.get $sqt0) (f64x2.mul (local.get $b) (local.get $t))))
          (local.set $stt0 (f64x2.add (local.get $stt0) (f64x2.mul (local.get $t) (local.get $t))))
          ;; lanes 2-3
          (local.set $a (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v))))
          (local.set $b (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $q) (local.get $q))))
          (local.set $e (f64x2.sub (local.get $a)
            (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $r) (local.get $r)))))
          (local.set $err1 (f64x2.add (local.get $err1) (f64x2.mul (local.get $e) (local.get $e))))
          ;; a stopped group's t is never used: no power is taken for it
          (local.set $big (v128.andnot (local.get $live1) (f64x2.lt (f64x2.abs (local.get $e)) (local.get $tinyv))))
          (local.set $t (local.get $a))
          (if (v128.any_true (local.get $big)) (then
            (local.set $t (call $target (local.get $a) (local.get $e) (local.get $big) (local.get $y) (local.get $beta)))))
          (local.set $sq1 (f64x2.add (local.get $sq1) (local.get $b)))
          (local.set $st1 (f64x2.add (local.get $st1) (local.get $t)))
          (local.set $sqt1 (f64x2.add (local.get $sqt1) (f64x2.mul (local.get $b) (local.get $t))))
          (local.set $stt1 (f64x2.add (local.get $stt1) (f64x2.mul (local.get $t) (local.get $t))))
          (local.set $i (i32.add (local.get $i) (i32.const 16)))
          (br $pass)))
        ;; a lane stops when its error stops falling; else its parameters are the best so far
        (local.set $act (v128.and (local.get $act)
          (call $m32 (f64x2.lt (local.get $err0) (local.get $be0)) (f64x2.lt (local.get $err1) (local.get $be1)))))
        (local.set $a (i64x2.extend_low_i32x4_s (local.get $act)))
        (local.set $b (i64x2.extend_high_i32x4_s (local.get $act)))
        (local.set $be0 (v128.bitselect (local.get $err0) (local.get $be0) (local.get $a)))
        (local.set $be1 (v128.bitselect (local.get $err1) (local.get $be1) (local.get $b)))
        (local.set $bs (v128.bitselect (local.get $scale) (local.get $bs) (local.get $act)))
        (local.set $bz (v128.bitselect (local.get $zp) (local.get $bz) (local.get $act)))
        ;; the least-squares fit of W_q on W − W_e: s⁻¹ (and asymmetric: z)
        (if (local.get $sym) (then
          (local.set $inv0 (f64x2.div (local.get $sqt0) (local.get $stt0)))
          (local.set $inv1 (f64x2.div (local.get $sqt1) (local.get $stt1))))
        (else
          (local.set $mq (f64x2.div (local.get $sq0) (local.get $nf)))
          (local.set $mt (f64x2.div (local.get $st0) (local.get $nf)))
          (local.set $inv0 (f64x2.div (f64x2.sub (local.get $sqt0) (f64x2.mul (f64x2.mul (local.get $nf) (local.get $mq)) (local.get $mt)))
            (f64x2.sub (local.get $stt0) (f64x2.mul (f64x2.mul (local.get $nf) (local.get $mt)) (local.get $mt)))))
          (local.set $z0 (v128.bitselect (f64x2.sub (local.get $mq) (f64x2.mul (local.get $inv0) (local.get $mt))) (local.get $z0) (local.get $a)))
          (local.set $mq (f64x2.div (local.get $sq1) (local.get $nf)))
          (local.set $mt (f64x2.div (local.get $st1) (local.get $nf)))
          (local.set $inv1 (f64x2.div (f64x2.sub (local.get $sqt1) (f64x2.mul (f64x2.mul (local.get $nf) (local.get $mq)) (local.get $mt)))
            (f64x2.sub (local.get $stt1) (f64x2.mul (f64x2.mul (local.get $nf) (local.get $mt)) (local.get $mt)))))
          (local.set $z1 (v128.bitselect (f64x2.sub (local.get $mq) (f64x2.mul (local.get $inv1) (local.get $mt))) (local.get $z1) (local.get $b)))))
        ;; next scale f32(1 / s⁻¹), kept going while positive and finite
        (local.set $next (call $f32of (f64x2.div (f64x2.splat (f64.const 1)) (local.get $inv0)) (f64x2.div (f64x2.splat (f64.const 1)) (local.get $inv1))))
        (local.set $act (v128.and (local.get $act) (v128.and (f32x4.gt (local.get $next) (f32x4.splat (f32.const 0)))
          (f32x4.lt (local.get $next) (f32x4.splat (f32.const inf))))))
        (local.set $scale (v128.bitselect (local.get $next) (local.get $scale) (local.get $act)))
        (local.set $it (i32.add (local.get $it) (i32.const 1)))
        (br $iter)))
      (v128.store (i32.add (local.get $os) (local.get $g)) (local.get $bs))
      (v128.store (i32.add (local.get $oz) (local.get $g)) (i32x4.trunc_sat_f32x4_s (local.get $bz)))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br $each))))
)

;; hqq (methods/hqq.ts hqqGroup) for four groups of n values at a time, one group per float32
;; lane: each lane's operations are the reference's, in the reference's order (its iteration
;; is float32 throughout, the score float64), so the parameters come out bit for bit. The Lp
;; shrink's power is methods/hqq-power.ts's powApprox, taken on the whole vector when some
;; live lane's error is at or above the threshold (most are below it).
;;
;; Groups stop after 2 to 20 iterations (early stop; on Gaussian data a mean of 4-10, a
;; quarter to a third run all 20), so a lane whose group is done takes the next group of the
;; queue at once (its column of the rows rewritten, its state reset) rather than idling until
;; the slowest of four fixed groups is done: the passes follow the mean, not the maximum of four.
;;
;; Per call: a queue of 4·$units groups; group g's values are n float32 at $vals + 4·offs[g],
;; rs[g] / rz[g] its round-to-nearest scale (f32) and zero point (i32); the best parameters
;; seen go to os[g] / oz[g]. $tab: 16 float32 constants (powerConstants: YH, YL, C1, C3, C5,
;; C7, E1..E7), then per iteration (at most $iters) β and the threshold (f32 pairs). $mid:
;; (q_min + q_max) / 2, the centre of the grid (asymmetric). $u: scratch, 256 bytes (the lanes'
;; state, below) + 16·n (the rows: element i of the four lanes' groups at $u + 256 + 16·i).
;; State at $u, a vector each (lane j at + 4j): +0 scale, +16 z, +32 c, +48 best scale, +64
;; best zero point (f32), +80 live (i32 mask), +96 iteration, +112 group (−1: none), +128 best
;; error (f64, lane j at +128 + 8j).
(module
  (import "env" "memory" (memory 1))
  ;; Passes over a unit's rows and vectors whose power was taken, for the bench's bound.
  (global $passes (export "passes") (mut i32) (i32.const 0))
  (global $powers (export "powers") (mut i32) (i32.const 0))

  ;; powApprox on four lanes: a = 2^k·m, y·log2 a = YH·k + (YL·k + s·C(s²)), 2^r by Taylor,
  ;; 2^n into the exponent bits. Lanes whose a is not a normal float32 ≥ 2⁻¹²⁶ give garbage
  ;; (the caller discards them); nothing traps.
  (func $pow4 (param $a v128) (param $c i32) (result v128)
    (local $ix v128) (local $f v128) (local $s v128) (local $s2 v128) (local $kf v128)
    (local $hi v128) (local $lo v128) (local $n v128) (local $r v128) (local $p v128)
    (local.set $ix (i32x4.sub (local.get $a) (v128.const i32x4 0x3f3504f3 0x3f3504f3 0x3f3504f3 0x3f3504f3)))
    (local.set $kf (f32x4.convert_i32x4_s (i32x4.shr_s (local.get $ix) (i32.const 23))))
    (local.set $f (f32x4.sub
      (i32x4.add (v128.and (local.get $ix) (v128.const i32x4 0x7fffff 0x7fffff 0x7fffff 0x7fffff))
        (v128.const i32x4 0x3f3504f3 0x3f3504f3 0x3f3504f3 0x3f3504f3))
      (v128.const f32x4 1 1 1 1)))
    (local.set $s (f32x4.div (local.get $f) (f32x4.add (v128.const f32x4 2 2 2 2) (local.get $f))))
    (local.set $s2 (f32x4.mul (local.get $s) (local.get $s)))
    (local.set $p (f32x4.mul (local.get $s2) (v128.load32_splat offset=20 (local.get $c))))
    (local.set $p (f32x4.mul (local.get $s2) (f32x4.add (v128.load32_splat offset=16 (local.get $c)) (local.get $p))))
    (local.set $p (f32x4.mul (local.get $s2) (f32x4.add (v128.load32_splat offset=12 (local.get $c)) (local.get $p))))
    (local.set $p (f32x4.mul (local.get $s) (f32x4.add (v128.load32_splat offset=8 (local.get $c)) (local.get $p))))
    (local.set $hi (f32x4.mul (v128.load32_splat (local.get $c)) (local.get $kf)))
    (local.set $lo (f32x4.add (f32x4.mul (v128.load32_splat offset=4 (local.get $c)) (local.get $kf)) (local.get $p)))
    (local.set $n (f32x4.nearest (f32x4.add (local.get $hi) (local.get $lo))))
    (local.set $r (f32x4.add (f32x4.sub (local.get $hi) (local.get $n)) (local.get $lo)))
    (local.set $p (f32x4.mul (local.get $r) (v128.load32_splat offset=48 (local.get $c))))
    (local.set $p (f32x4.mul (local.get $r) (f32x4.add (v128.load32_splat offset=44 (local.get $c)) (local.get $p))))
    (local.set $p (f32x4.mul (local.get $r) (f32x4.add (v128.load32_splat offset=40 (local.get $c)) (local.get $p))))
    (local.set $p (f32x4.mul (local.get $r) (f32x4.add (v128.load32_splat offset=36 (local.get $c)) (local.get $p))))
    (local.set $p (f32x4.mul (local.get $r) (f32x4.add (v128.load32_splat offset=32 (local.get $c)) (local.get $p))))
    (local.set $p (f32x4.mul (local.get $r) (f32x4.add (v128.load32_splat offset=28 (local.get $c)) (local.get $p))))
    (local.set $p (f32x4.mul (local.get $r) (f32x4.add (v128.load32_splat offset=24 (local.get $c)) (local.get $p))))
    (local.set $p (f32x4.add (v128.const f32x4 1 1 1 1) (local.get $p)))
    (i32x4.add (local.get $p) (i32x4.shl (i32x4.trunc_sat_f32x4_s (local.get $n)) (i32.const 23))))

  ;; t = x, or x − shrink(e) = x − sign(e)·(|e| − |e|^(p−1)/β) in the lanes of $big where that
  ;; is positive; called only when some lane is big.
  (func $target (param $v v128) (param $e v128) (param $a v128) (param $big v128) (param $beta v128) (param $c i32) (result v128)
    (local $s v128)
    (global.set $powers (i32.add (global.get $powers) (i32.const 1)))
    (local.set $s (f32x4.sub (local.get $a) (f32x4.div (call $pow4 (local.get $a) (local.get $c)) (local.get $beta))))
    (v128.bitselect
      (f32x4.sub (local.get $v) (v128.bitselect (local.get $e) (local.get $s) (v128.const i32x4 0x80000000 0x80000000 0x80000000 0x80000000)))
      (local.get $v)
      (v128.and (local.get $big) (f32x4.gt (local.get $s) (v128.const f32x4 0 0 0 0)))))

  ;; Lanes that are done (stopped, or all iterations run): their group's best parameters are
  ;; written out and the lane takes group $next of the queue (or goes idle). Returns the new $next.
  (func $refill (param $u i32) (param $next i32) (param $count i32) (param $n i32) (param $vals i32) (param $offs i32)
        (param $rs i32) (param $rz i32) (param $os i32) (param $oz i32) (param $iters i32) (param $mid f32) (param $sym i32) (result i32)
    (local $j i32) (local $o i32) (local $gid i32) (local $src i32) (local $dst i32) (local $end i32) (local $s f32) (local $zf f32)
    (block $jdone (loop $lanes
      (br_if $jdone (i32.ge_u (local.get $j) (i32.const 4)))
      (local.set $o (i32.add (local.get $u) (i32.shl (local.get $j) (i32.const 2))))
      (if (i32.or (i32.eqz (i32.load offset=80 (local.get $o))) (i32.ge_u (i32.load offset=96 (local.get $o)) (local.get $iters))) (then
        (local.set $gid (i32.load offset=112 (local.get $o)))
        (if (i32.ge_s (local.get $gid) (i32.const 0)) (then
          (f32.store (i32.add (local.get $os) (i32.shl (local.get $gid) (i32.const 2))) (f32.load offset=48 (local.get $o)))
          (i32.store (i32.add (local.get $oz) (i32.shl (local.get $gid) (i32.const 2))) (i32.trunc_sat_f32_s (f32.load offset=64 (local.get $o))))))
        (if (i32.lt_u (local.get $next) (local.get $count)) (then
          (local.set $src (i32.add (local.get $vals) (i32.shl (i32.load (i32.add (local.get $offs) (i32.shl (local.get $next) (i32.const 2)))) (i32.const 2))))
          (local.set $dst (i32.add (local.get $o) (i32.const 256)))
          (local.set $end (i32.add (local.get $dst) (i32.shl (local.get $n) (i32.const 4))))
          (block $cdone (loop $column
            (br_if $cdone (i32.ge_u (local.get $dst) (local.get $end)))
            (f32.store (local.get $dst) (f32.load (local.get $src)))
            (local.set $src (i32.add (local.get $src) (i32.const 4)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
            (br $column)))
          (local.set $s (f32.load (i32.add (local.get $rs) (i32.shl (local.get $next) (i32.const 2)))))
          (local.set $zf (f32.convert_i32_s (i32.load (i32.add (local.get $rz) (i32.shl (local.get $next) (i32.const 2))))))
          (f32.store (local.get $o) (local.get $s))
          (f32.store offset=16 (local.get $o) (local.get $zf))
          ;; c = f32((mid − zp)·scale), the centre of rtn's grid (symmetric: 0)
          (f32.store offset=32 (local.get $o) (if (result f32) (local.get $sym) (then (f32.const 0))
            (else (f32.mul (f32.sub (local.get $mid) (local.get $zf)) (local.get $s)))))
          (f32.store offset=48 (local.get $o) (local.get $s))
          (f32.store offset=64 (local.get $o) (local.get $zf))
          (i32.store offset=80 (local.get $o) (i32.const -1))
          (i32.store offset=96 (local.get $o) (i32.const 0))
          (i32.store offset=112 (local.get $o) (local.get $next))
          (f64.store offset=128 (i32.add (local.get $u) (i32.shl (local.get $j) (i32.const 3))) (f64.const inf))
          (local.set $next (i32.add (local.get $next) (i32.const 1))))
        (else
          (i32.store offset=80 (local.get $o) (i32.const 0))
          (i32.store offset=112 (local.get $o) (i32.const -1))))))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br $lanes)))
    (local.get $next))

  ;; lane j's float32 at $pairs + 8·it[j] + $at, it[j] held below $last (idle lanes run on)
  (func $gather (param $pairs i32) (param $it v128) (param $at i32) (result v128)
    (local $b i32) (local $r v128)
    (local.set $b (i32.add (local.get $pairs) (local.get $at)))
    (local.set $it (i32x4.shl (local.get $it) (i32.const 3)))
    (local.set $r (v128.load32_splat (i32.add (local.get $b) (i32x4.extract_lane 0 (local.get $it)))))
    (local.set $r (v128.load32_lane 1 (i32.add (local.get $b) (i32x4.extract_lane 1 (local.get $it))) (local.get $r)))
    (local.set $r (v128.load32_lane 2 (i32.add (local.get $b) (i32x4.extract_lane 2 (local.get $it))) (local.get $r)))
    (v128.load32_lane 3 (i32.add (local.get $b) (i32x4.extract_lane 3 (local.get $it))) (local.get $r)))

  (func (export "hqq") (param $units i32) (param $n i32) (param $vals i32) (param $offs i32) (param $rs i32) (param $rz i32)
        (param $os i32) (param $oz i32) (param $tab i32) (param $iters i32) (param $mid f32) (param $sym i32)
        (param $qmin f32) (param $qmax f32) (param $u i32)
    (local $next i32) (local $count i32) (local $i i32) (local $xs i32) (local $end i32) (local $pairs i32)
    (local $nf v128) (local $betav v128) (local $tinyv v128) (local $c v128) (local $itv v128) (local $itc v128)
    (local $scale v128) (local $z v128) (local $zp v128) (local $act v128)
    (local $bs v128) (local $bz v128) (local $be0 v128) (local $be1 v128) (local $lo v128) (local $hi v128)
    (local $v v128) (local $l v128) (local $a v128) (local $e v128) (local $t v128)
    (local $err0 v128) (local $err1 v128) (local $sl v128) (local $st v128) (local $slt v128) (local $stt v128)
    (local $big v128) (local $inv v128) (local $ml v128) (local $mt v128) (local $nxt v128)
    ;; no iteration: the round-to-nearest parameters, as the reference returns them
    (if (i32.eqz (local.get $iters)) (then
      (local.set $count (i32.shl (local.get $units) (i32.const 4)))
      (block $cdone (loop $copy
        (br_if $cdone (i32.ge_u (local.get $i) (local.get $count)))
        (i32.store (i32.add (local.get $os) (local.get $i)) (i32.load (i32.add (local.get $rs) (local.get $i))))
        (i32.store (i32.add (local.get $oz) (local.get $i)) (i32.load (i32.add (local.get $rz) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $copy)))
      (return)))
    (local.set $nf (f32x4.splat (f32.convert_i32_u (local.get $n))))
    (local.set $pairs (i32.add (local.get $tab) (i32.const 64)))
    (local.set $xs (i32.add (local.get $u) (i32.const 256)))
    (local.set $end (i32.add (local.get $xs) (i32.shl (local.get $n) (i32.const 4))))
    (local.set $count (i32.shl (local.get $units) (i32.const 2)))
    ;; every lane idle, with no group: the first refill fills them
    (v128.store offset=80 (local.get $u) (v128.const i32x4 0 0 0 0))
    (v128.store offset=112 (local.get $u) (v128.const i32x4 -1 -1 -1 -1))
    (block $idone (loop $iter
      (if (v128.any_true (v128.or (v128.not (v128.load offset=80 (local.get $u)))
            (i32x4.ge_u (v128.load offset=96 (local.get $u)) (i32x4.splat (local.get $iters))))) (then
        (local.set $next (call $refill (local.get $u) (local.get $next) (local.get $count) (local.get $n) (local.get $vals) (local.get $offs)
          (local.get $rs) (local.get $rz) (local.get $os) (local.get $oz) (local.get $iters) (local.get $mid) (local.get $sym)))))
      (local.set $act (v128.load offset=80 (local.get $u)))
      (br_if $idone (i32.eqz (v128.any_true (local.get $act))))
      (local.set $scale (v128.load (local.get $u)))
      (local.set $z (v128.load offset=16 (local.get $u)))
      (local.set $c (v128.load offset=32 (local.get $u)))
      (local.set $bs (v128.load offset=48 (local.get $u)))
      (local.set $bz (v128.load offset=64 (local.get $u)))
      (local.set $itv (v128.load offset=96 (local.get $u)))
      (local.set $be0 (v128.load offset=128 (local.get $u)))
      (local.set $be1 (v128.load offset=144 (local.get $u)))
      (local.set $itc (i32x4.min_u (local.get $itv) (i32x4.splat (i32.sub (local.get $iters) (i32.const 1)))))
      (local.set $betav (call $gather (local.get $pairs) (local.get $itc) (i32.const 0)))
      (local.set $tinyv (call $gather (local.get $pairs) (local.get $itc) (i32.const 4)))
      ;; zp = clamp(round(z), q_min, q_max) (symmetric: 0)
      (if (local.get $sym) (then (local.set $zp (v128.const f32x4 0 0 0 0)))
      (else
        (local.set $zp (f32x4.pmin (f32x4.pmax (f32x4.nearest (local.get $z))
          (f32x4.splat (local.get $qmin))) (f32x4.splat (local.get $qmax))))))
      (local.set $lo (f32x4.sub (f32x4.splat (local.get $qmin)) (local.get $zp)))
      (local.set $hi (f32x4.sub (f32x4.splat (local.get $qmax)) (local.get $zp)))
      (local.set $err0 (v128.const i64x2 0 0)) (local.set $err1 (v128.const i64x2 0 0))
      (local.set $sl (v128.const i64x2 0 0)) (local.set $st (v128.const i64x2 0 0))
      (local.set $slt (v128.const i64x2 0 0)) (local.set $stt (v128.const i64x2 0 0))
      (global.set $passes (i32.add (global.get $passes) (i32.const 1)))
      (local.set $i (local.get $xs))
      (block $pdone (loop $pass
        (br_if $pdone (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $v (v128.load (local.get $i)))
        ;; l = clamp(round(f32(x / scale)), q_min − zp, q_max − zp), e = x − f32(l·scale) saturated
        (local.set $l (f32x4.pmin (f32x4.pmax (f32x4.nearest (f32x4.div (local.get $v) (local.get $scale))) (local.get $lo)) (local.get $hi)))
        (local.set $e (f32x4.sub (local.get $v) (f32x4.pmin (f32x4.pmax (f32x4.mul (local.get $l) (local.get $scale))
          (v128.const f32x4 -0x1.fffffep+127 -0x1.fffffep+127 -0x1.fffffep+127 -0x1.fffffep+127))
          (v128.const f32x4 0x1.fffffep+127 0x1.fffffep+127 0x1.fffffep+127 0x1.fffffep+127))))
        ;; the score: Σe² in float64 (e² exact), lanes 0-1 and 2-3
        (local.set $a (f64x2.promote_low_f32x4 (local.get $e)))
        (local.set $err0 (f64x2.add (local.get $err0) (f64x2.mul (local.get $a) (local.get $a))))
        (local.set $a (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $e) (local.get $e))))
        (local.set $err1 (f64x2.add (local.get $err1) (f64x2.mul (local.get $a) (local.get $a))))
        ;; t: the shrink where |e| is not below the threshold (an idle or stopped lane's t is never used)
        (local.set $a (f32x4.abs (local.get $e)))
        (local.set $big (v128.andnot (local.get $act) (f32x4.lt (local.get $a) (local.get $tinyv))))
        (local.set $t (local.get $v))
        (if (v128.any_true (local.get $big)) (then
          (local.set $t (call $target (local.get $v) (local.get $e) (local.get $a) (local.get $big) (local.get $betav) (local.get $tab)))))
        (local.set $t (f32x4.sub (local.get $t) (local.get $c)))
        (local.set $sl (f32x4.add (local.get $sl) (local.get $l)))
        (local.set $st (f32x4.add (local.get $st) (local.get $t)))
        (local.set $slt (f32x4.add (local.get $slt) (f32x4.mul (local.get $l) (local.get $t))))
        (local.set $stt (f32x4.add (local.get $stt) (f32x4.mul (local.get $t) (local.get $t))))
        (local.set $i (i32.add (local.get $i) (i32.const 16)))
        (br $pass)))
      ;; a lane stops when its error stops falling; else its parameters are the best so far
      (local.set $act (v128.and (local.get $act)
        (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27
          (f64x2.lt (local.get $err0) (local.get $be0)) (f64x2.lt (local.get $err1) (local.get $be1)))))
      (local.set $be0 (v128.bitselect (local.get $err0) (local.get $be0) (i64x2.extend_low_i32x4_s (local.get $act))))
      (local.set $be1 (v128.bitselect (local.get $err1) (local.get $be1) (i64x2.extend_high_i32x4_s (local.get $act))))
      (local.set $bs (v128.bitselect (local.get $scale) (local.get $bs) (local.get $act)))
      (local.set $bz (v128.bitselect (local.get $zp) (local.get $bz) (local.get $act)))
      ;; the least-squares fit of l on T − c: s⁻¹ (and asymmetric: z)
      (if (local.get $sym) (then
        (local.set $inv (f32x4.div (local.get $slt) (local.get $stt))))
      (else
        (local.set $ml (f32x4.div (local.get $sl) (local.get $nf)))
        (local.set $mt (f32x4.div (local.get $st) (local.get $nf)))
        (local.set $inv (f32x4.div (f32x4.sub (local.get $slt) (f32x4.mul (f32x4.mul (local.get $nf) (local.get $ml)) (local.get $mt)))
          (f32x4.sub (local.get $stt) (f32x4.mul (f32x4.mul (local.get $nf) (local.get $mt)) (local.get $mt)))))
        (local.set $z (v128.bitselect
          (f32x4.sub (f32x4.add (local.get $ml) (local.get $zp)) (f32x4.mul (local.get $inv) (f32x4.add (local.get $mt) (local.get $c))))
          (local.get $z) (local.get $act)))))
      ;; next scale f32(1 / s⁻¹), kept going while positive and finite
      (local.set $nxt (f32x4.div (v128.const f32x4 1 1 1 1) (local.get $inv)))
      (local.set $act (v128.and (local.get $act) (v128.and (f32x4.gt (local.get $nxt) (f32x4.splat (f32.const 0)))
        (f32x4.lt (local.get $nxt) (f32x4.splat (f32.const inf))))))
      (local.set $scale (v128.bitselect (local.get $nxt) (local.get $scale) (local.get $act)))
      (v128.store (local.get $u) (local.get $scale))
      (v128.store offset=16 (local.get $u) (local.get $z))
      (v128.store offset=48 (local.get $u) (local.get $bs))
      (v128.store offset=64 (local.get $u) (local.get $bz))
      (v128.store offset=80 (local.get $u) (local.get $act))
      (v128.store offset=96 (local.get $u) (i32x4.add (local.get $itv) (v128.const i32x4 1 1 1 1)))
      (v128.store offset=128 (local.get $u) (local.get $be0))
      (v128.store offset=144 (local.get $u) (local.get $be1))
      (br $iter))))
)

;; lsq (methods/lsq.ts lsqGroup) for four groups of n values at a time, one group per lane.
;; Every sum is the reference's: the same float64 (or float32) operations in the same order
;; within each group (the lanes are groups, never pieces of one group), so scale and zero
;; point come out bit for bit as the TypeScript reference gives them. Unweighted only (the
;; reference's w_i = 1: 1·l = l exactly, so the products are the same).
;;
;; Per call: $units units of 4 groups; the g-th group's values are n float32 at
;; $vals + 4·offs[g]; lo[g], hi[g] its min-max range (float32), rs[g] / rz[g] its
;; round-to-nearest scale (f32) and zero point (i32); the result goes to os[g] / oz[g].
;; $tab: the $count candidates' numerators (float64, methods/lsq.ts lsqTable): asymmetric
;; rmin + rdelta·is + nmax, symmetric delta·is. $u: scratch (768 bytes + 80·n).
;;
;; Scratch at $u (float64 fields hold lanes 0-1 at +0 and lanes 2-3 at +16, so a half's field
;; is at the same offset from $u + 16·half):
;;   +0 swx   +32 swx2   +64 mn (asym: min(lo, 0); sym: base)   +96 mx (asym: max(hi, 0); sym: amax)
;;   +128 scan's best error (asym) or best score (sym)   +160 pick d   +192 pick zp   +224 picked mask
;;   +256 ext (the first value of largest magnitude)   +288 the scan's three sums (swl, swl2, swlx: 96 bytes)
;;   states (128 bytes each: +0 scale f32x4, +16 zp f32x4, +32 err, +64 xl, +96 ll):
;;   +384 best   +512 candidate   +640 neighbour
;;   +768 rows: n × f32x4 (the four groups' values), then n × [t lo, t hi, v lo, v hi] float64
;;   (t = v − mn, asymmetric).
;; The hot loops clamp with pmin/pmax: no NaN reaches them (the caller sends only finite
;; groups), and where they differ from min/max, the sign of a zero l, no sum changes.
(module
  (import "env" "memory" (memory 1))
  ;; Passes over a unit's rows so far (candidate scans, exact scorings), for the bench's bound.
  (global $scans (export "scans") (mut i32) (i32.const 0))
  (global $scorings (export "scorings") (mut i32) (i32.const 0))

  ;; f64x2 lane masks of the float32 lanes' mask m (lanes 0-1, 2-3).
  (func $lo64 (param $m v128) (result v128) (i64x2.extend_low_i32x4_s (local.get $m)))
  (func $hi64 (param $m v128) (result v128) (i64x2.extend_high_i32x4_s (local.get $m)))
  ;; A float32-lane mask from two f64x2 masks.
  (func $m32 (param $a v128) (param $b v128) (result v128)
    (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27 (local.get $a) (local.get $b)))
  ;; Four float32 lanes from two f64x2 halves (each rounded to float32, as Math.fround).
  (func $f32of (param $a v128) (param $b v128) (result v128)
    (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
      (f32x4.demote_f64x2_zero (local.get $a)) (f32x4.demote_f64x2_zero (local.get $b))))
  ;; stored.ts storedError for the state at $st (its scale and zero point): err = Σ (x − x̂)²,
  ;; xl = Σ x·l, ll = Σ l² with l = clamp(round(f32(x / scale)), q_min − zp, q_max − zp) and
  ;; x̂ = f32(l·scale) saturated at ±FLT_MAX, each lane's sums in element order.
  (func $stored (param $xs i32) (param $n i32) (param $st i32) (param $qmin f32) (param $qmax f32)
    (local $end i32) (local $s v128) (local $lo v128) (local $hi v128) (local $v v128) (local $l v128) (local $r v128)
    (local $a v128) (local $b v128) (local $e v128)
    (local $err0 v128) (local $err1 v128) (local $xl0 v128) (local $xl1 v128) (local $ll0 v128) (local $ll1 v128)
    (global.set $scorings (i32.add (global.get $scorings) (i32.const 1)))
    (local.set $s (v128.load (local.get $st)))
    (local.set $lo (f32x4.sub (f32x4.splat (local.get $qmin)) (v128.load offset=16 (local.get $st))))
    (local.set $hi (f32x4.sub (f32x4.splat (local.get $qmax)) (v128.load offset=16 (local.get $st))))
    (local.set $end (i32.add (local.get $xs) (i32.shl (local.get $n) (i32.const 4))))
    (block $done (loop $rows
      (br_if $done (i32.ge_u (local.get $xs) (local.get $end)))
      (local.set $v (v128.load (local.get $xs)))
      (local.set $l (f32x4.pmin (f32x4.pmax (f32x4.nearest (f32x4.div (local.get $v) (local.get $s))) (local.get $lo)) (local.get $hi)))
      (local.set $r (f32x4.pmin (f32x4.pmax (f32x4.mul (local.get $l) (local.get $s))
        (v128.const f32x4 -0x1.fffffep+127 -0x1.fffffep+127 -0x1.fffffep+127 -0x1.fffffep+127))
        (v128.const f32x4 0x1.fffffep+127 0x1.fffffep+127 0x1.fffffep+127 0x1.fffffep+127)))
      (local.set $a (f64x2.promote_low_f32x4 (local.get $v)))
      (local.set $b (f64x2.promote_low_f32x4 (local.get $l)))
      (local.set $e (f64x2.sub (local.get $a) (f64x2.promote_low_f32x4 (local.get $r))))
      (local.set $err0 (f64x2.add (local.get $err0) (f64x2.mul (local.get $e) (local.get $e))))
      (local.set $xl0 (f64x2.add (local.get $xl0) (f64x2.mul (local.get $a) (local.get $b))))
      (local.set $ll0 (f64x2.add (local.get $ll0) (f64x2.mul (local.get $b) (local.get $b))))
      (local.set $a (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v))))
      (local.set $b (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $l) (local.get $l))))
      (local.set $e (f64x2.sub (local.get $a) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $r) (local.get $r)))))
      (local.set $err1 (f64x2.add (local.get $err1) (f64x2.mul (local.get $e) (local.get $e))))
      (local.set $xl1 (f64x2.add (local.get $xl1) (f64x2.mul (local.get $a) (local.get $b))))
      (local.set $ll1 (f64x2.add (local.get $ll1) (f64x2.mul (local.get $b) (local.get $b))))
      (local.set $xs (i32.add (local.get $xs) (i32.const 16)))
      (br $rows)))
    (v128.store offset=32 (local.get $st) (local.get $err0))
    (v128.store offset=48 (local.get $st) (local.get $err1))
    (v128.store offset=64 (local.get $st) (local.get $xl0))
    (v128.store offset=80 (local.get $st) (local.get $xl1))
    (v128.store offset=96 (local.get $st) (local.get $ll0))
    (v128.store offset=112 (local.get $st) (local.get $ll1)))

  ;; The state at $src into the one at $dst in the lanes of the float32 mask $m.
  (func $merge (param $dst i32) (param $src i32) (param $m v128)
    (local $m0 v128) (local $m1 v128) (local $i i32)
    (v128.store (local.get $dst) (v128.bitselect (v128.load (local.get $src)) (v128.load (local.get $dst)) (local.get $m)))
    (v128.store offset=16 (local.get $dst)
      (v128.bitselect (v128.load offset=16 (local.get $src)) (v128.load offset=16 (local.get $dst)) (local.get $m)))
    (local.set $m0 (call $lo64 (local.get $m)))
    (local.set $m1 (call $hi64 (local.get $m)))
    (local.set $i (i32.const 32))
    (block $done (loop $f
      (br_if $done (i32.ge_u (local.get $i) (i32.const 128)))
      (v128.store (i32.add (local.get $dst) (local.get $i))
        (v128.bitselect (v128.load (i32.add (local.get $src) (local.get $i))) (v128.load (i32.add (local.get $dst) (local.get $i))) (local.get $m0)))
      (v128.store offset=16 (i32.add (local.get $dst) (local.get $i))
        (v128.bitselect (v128.load offset=16 (i32.add (local.get $src) (local.get $i))) (v128.load offset=16 (i32.add (local.get $dst) (local.get $i))) (local.get $m1)))
      (local.set $i (i32.add (local.get $i) (i32.const 32)))
      (br $f))))

  ;; stored.ts refitScale on the state at $b in the lanes of $act (the state's sums are its
  ;; own storedError), up to 4 rounds, $c as scratch: scale = f32(xl / ll) while it is
  ;; positive, finite and new and lowers the error; a lane that stops stays stopped.
  (func $refit (param $b i32) (param $c i32) (param $act v128) (param $xs i32) (param $n i32) (param $qmin f32) (param $qmax f32)
    (local $r i32) (local $ns v128) (local $better v128)
    (block $done (loop $rounds
      (br_if $done (i32.ge_u (local.get $r) (i32.const 4)))
      (local.set $act (v128.and (local.get $act) (call $m32
        (f64x2.gt (v128.load offset=96 (local.get $b)) (f64x2.splat (f64.const 0)))
        (f64x2.gt (v128.load offset=112 (local.get $b)) (f64x2.splat (f64.const 0))))))
      (local.set $ns (call $f32of
        (f64x2.div (v128.load offset=64 (local.get $b)) (v128.load offset=96 (local.get $b)))
        (f64x2.div (v128.load offset=80 (local.get $b)) (v128.load offset=112 (local.get $b)))))
      (local.set $act (v128.and (local.get $act) (v128.and
        (v128.and (f32x4.gt (local.get $ns) (f32x4.splat (f32.const 0))) (f32x4.lt (local.get $ns) (f32x4.splat (f32.const inf))))
        (f32x4.ne (local.get $ns) (v128.load (local.get $b))))))
      (br_if $done (i32.eqz (v128.any_true (local.get $act))))
      (v128.store (local.get $c) (v128.bitselect (local.get $ns) (v128.load (local.get $b)) (local.get $act)))
      (v128.store offset=16 (local.get $c) (v128.load offset=16 (local.get $b)))
      (call $stored (local.get $xs) (local.get $n) (local.get $c) (local.get $qmin) (local.get $qmax))
      (local.set $better (v128.and (local.get $act) (call $m32
        (f64x2.lt (v128.load offset=32 (local.get $c)) (v128.load offset=32 (local.get $b)))
        (f64x2.lt (v128.load offset=48 (local.get $c)) (v128.load offset=48 (local.get $b))))))
      (call $merge (local.get $b) (local.get $c) (local.get $better))
      (local.set $act (local.get $better))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rounds))))

  ;; One candidate's sums over the rows at $tv: l = clamp(round(iscale·src), $lo, $hi) with src
  ;; t (+0, asymmetric) or v (+32, symmetric); Σ l, Σ l², Σ l·v into $u + 288.
  (func $scan (param $tv i32) (param $n i32) (param $src i32) (param $i0 v128) (param $i1 v128) (param $lo f64) (param $hi f64) (param $u i32)
    (local $end i32) (local $l v128) (local $v v128) (local $vlo v128) (local $vhi v128)
    (local $a0 v128) (local $a1 v128) (local $b0 v128) (local $b1 v128) (local $c0 v128) (local $c1 v128)
    (global.set $scans (i32.add (global.get $scans) (i32.const 1)))
    (local.set $vlo (f64x2.splat (local.get $lo)))
    (local.set $vhi (f64x2.splat (local.get $hi)))
    (local.set $end (i32.add (local.get $tv) (i32.shl (local.get $n) (i32.const 6))))
    (local.set $src (i32.add (local.get $tv) (local.get $src)))
    (block $done (loop $rows
      (br_if $done (i32.ge_u (local.get $tv) (local.get $end)))
      (local.set $l (f64x2.pmin (f64x2.pmax (f64x2.nearest (f64x2.mul (local.get $i0) (v128.load (local.get $src)))) (local.get $vlo)) (local.get $vhi)))
      (local.set $v (v128.load offset=32 (local.get $tv)))
      (local.set $a0 (f64x2.add (local.get $a0) (local.get $l)))
      (local.set $b0 (f64x2.add (local.get $b0) (f64x2.mul (local.get $l) (local.get $l))))
      (local.set $c0 (f64x2.add (local.get $c0) (f64x2.mul (local.get $l) (local.get $v))))
      (local.set $l (f64x2.pmin (f64x2.pmax (f64x2.nearest (f64x2.mul (local.get $i1) (v128.load offset=16 (local.get $src)))) (local.get $vlo)) (local.get $vhi)))
      (local.set $v (v128.load offset=48 (local.get $tv)))
      (local.set $a1 (f64x2.add (local.get $a1) (local.get $l)))
      (local.set $b1 (f64x2.add (local.get $b1) (f64x2.mul (local.get $l) (local.get $l))))
      (local.set $c1 (f64x2.add (local.get $c1) (f64x2.mul (local.get $l) (local.get $v))))
      (local.set $tv (i32.add (local.get $tv) (i32.const 64)))
      (local.set $src (i32.add (local.get $src) (i32.const 64)))
      (br $rows)))
    (v128.store offset=288 (local.get $u) (local.get $a0))
    (v128.store offset=304 (local.get $u) (local.get $a1))
    (v128.store offset=320 (local.get $u) (local.get $b0))
    (v128.store offset=336 (local.get $u) (local.get $b1))
    (v128.store offset=352 (local.get $u) (local.get $c0))
    (v128.store offset=368 (local.get $u) (local.get $c1)))

  ;; make_qkx2's step for one candidate, one half (lanes at $h = $u + 16·half): the 2×2
  ;; weighted least squares, the zero point rounded and the scale refitted with it held, and
  ;; that form's error from the same sums; kept when lower (lsq.ts searchAsymmetric).
  (func $pickA (param $h i32) (param $sw f64) (param $nmax f64)
    (local $swl v128) (local $swl2 v128) (local $swlx v128) (local $swx v128) (local $w v128)
    (local $D v128) (local $d v128) (local $m v128) (local $mp v128) (local $ok v128) (local $zp v128)
    (local $num v128) (local $den v128) (local $d2 v128) (local $err v128)
    (local.set $swl (v128.load offset=288 (local.get $h)))
    (local.set $swl2 (v128.load offset=320 (local.get $h)))
    (local.set $swlx (v128.load offset=352 (local.get $h)))
    (local.set $swx (v128.load (local.get $h)))
    (local.set $w (f64x2.splat (local.get $sw)))
    (local.set $D (f64x2.sub (f64x2.mul (local.get $w) (local.get $swl2)) (f64x2.mul (local.get $swl) (local.get $swl))))
    (local.set $d (f64x2.div (f64x2.sub (f64x2.mul (local.get $w) (local.get $swlx)) (f64x2.mul (local.get $swx) (local.get $swl))) (local.get $D)))
    (local.set $m (f64x2.div (f64x2.sub (f64x2.mul (local.get $swl2) (local.get $swx)) (f64x2.mul (local.get $swl) (local.get $swlx))) (local.get $D)))
    (local.set $mp (f64x2.gt (local.get $m) (f64x2.splat (f64.const 0))))
    (local.set $m (v128.andnot (local.get $m) (local.get $mp)))
    (local.set $d (v128.bitselect (f64x2.div (local.get $swlx) (local.get $swl2)) (local.get $d) (local.get $mp)))
    ;; the range must be non-empty (max > min), D > 0 and d > 0
    (local.set $ok (v128.and (f64x2.gt (v128.load offset=96 (local.get $h)) (v128.load offset=64 (local.get $h)))
      (v128.and (f64x2.gt (local.get $D) (f64x2.splat (f64.const 0))) (f64x2.gt (local.get $d) (f64x2.splat (f64.const 0))))))
    (local.set $zp (f64x2.min (f64x2.max (f64x2.nearest (f64x2.div (f64x2.neg (local.get $m)) (local.get $d)))
      (f64x2.splat (f64.const 0))) (f64x2.splat (local.get $nmax))))
    (local.set $num (f64x2.sub (local.get $swlx) (f64x2.mul (local.get $zp) (local.get $swx))))
    (local.set $den (f64x2.add
      (f64x2.sub (local.get $swl2) (f64x2.mul (f64x2.mul (f64x2.splat (f64.const 2)) (local.get $zp)) (local.get $swl)))
      (f64x2.mul (f64x2.mul (local.get $zp) (local.get $zp)) (local.get $w))))
    (local.set $ok (v128.and (local.get $ok) (f64x2.gt (local.get $den) (f64x2.splat (f64.const 0)))))
    (local.set $d2 (f64x2.div (local.get $num) (local.get $den)))
    (local.set $ok (v128.and (local.get $ok) (f64x2.gt (local.get $d2) (f64x2.splat (f64.const 0)))))
    (local.set $err (f64x2.add
      (f64x2.sub (v128.load offset=32 (local.get $h)) (f64x2.mul (f64x2.mul (f64x2.splat (f64.const 2)) (local.get $d2)) (local.get $num)))
      (f64x2.mul (f64x2.mul (local.get $d2) (local.get $d2)) (local.get $den))))
    (local.set $ok (v128.and (local.get $ok) (f64x2.lt (local.get $err) (v128.load offset=128 (local.get $h)))))
    (v128.store offset=128 (local.get $h) (v128.bitselect (local.get $err) (v128.load offset=128 (local.get $h)) (local.get $ok)))
    (v128.store offset=160 (local.get $h) (v128.bitselect (local.get $d2) (v128.load offset=160 (local.get $h)) (local.get $ok)))
    (v128.store offset=192 (local.get $h) (v128.bitselect (local.get $zp) (v128.load offset=192 (local.get $h)) (local.get $ok)))
    (v128.store offset=224 (local.get $h) (v128.or (v128.load offset=224 (local.get $h)) (local.get $ok))))

  ;; make_qx's step for one candidate, one half: keep the largest (Σxl)²/Σl² (lsq.ts searchSymmetric).
  (func $pickS (param $h i32)
    (local $lx v128) (local $l2 v128) (local $score v128) (local $ok v128)
    (local.set $l2 (v128.load offset=320 (local.get $h)))
    (local.set $lx (v128.load offset=352 (local.get $h)))
    (local.set $score (f64x2.div (f64x2.mul (local.get $lx) (local.get $lx)) (local.get $l2)))
    (local.set $ok (v128.and (v128.and (f64x2.gt (v128.load offset=96 (local.get $h)) (f64x2.splat (f64.const 0)))
      (f64x2.gt (local.get $l2) (f64x2.splat (f64.const 0))))
      (v128.and (f64x2.gt (local.get $lx) (f64x2.splat (f64.const 0))) (f64x2.gt (local.get $score) (v128.load offset=128 (local.get $h))))))
    (v128.store offset=128 (local.get $h) (v128.bitselect (local.get $score) (v128.load offset=128 (local.get $h)) (local.get $ok)))
    (v128.store offset=160 (local.get $h) (v128.bitselect (f64x2.div (local.get $lx) (local.get $l2)) (v128.load offset=160 (local.get $h)) (local.get $ok))))

  ;; The unit's rows (f32x4 at $xs, float64 [t, v] at $tv) and its lanes' fields (see the top).
  (func $prep (param $vals i32) (param $offs i32) (param $n i32) (param $lo i32) (param $hi i32) (param $sym i32) (param $qmin f64) (param $qmax f64) (param $u i32)
    (local $p0 i32) (local $p1 i32) (local $p2 i32) (local $p3 i32) (local $i i32) (local $xs i32) (local $tv i32)
    (local $v v128) (local $a v128) (local $b v128) (local $mn0 v128) (local $mn1 v128) (local $lo4 v128) (local $hi4 v128) (local $amax v128)
    (local $sx0 v128) (local $sx1 v128) (local $sxx0 v128) (local $sxx1 v128) (local $ex0 v128) (local $ex1 v128) (local $m v128)
    (local.set $lo4 (v128.load (local.get $lo)))
    (local.set $hi4 (v128.load (local.get $hi)))
    (if (local.get $sym) (then
      ;; amax = max(|lo|, |hi|); base comes after the extremes are known
      (local.set $amax (f32x4.max (f32x4.abs (local.get $lo4)) (f32x4.abs (local.get $hi4))))
      (v128.store offset=96 (local.get $u) (f64x2.promote_low_f32x4 (local.get $amax)))
      (v128.store offset=112 (local.get $u) (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $amax) (local.get $amax)))))
    (else
      (local.set $mn0 (f64x2.min (f64x2.promote_low_f32x4 (local.get $lo4)) (f64x2.splat (f64.const 0))))
      (local.set $mn1 (f64x2.min (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $lo4) (local.get $lo4))) (f64x2.splat (f64.const 0))))
      (v128.store offset=64 (local.get $u) (local.get $mn0))
      (v128.store offset=80 (local.get $u) (local.get $mn1))
      (v128.store offset=96 (local.get $u) (f64x2.max (f64x2.promote_low_f32x4 (local.get $hi4)) (f64x2.splat (f64.const 0))))
      (v128.store offset=112 (local.get $u) (f64x2.max (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $hi4) (local.get $hi4))) (f64x2.splat (f64.const 0))))))
    (local.set $p0 (i32.add (local.get $vals) (i32.shl (i32.load (local.get $offs)) (i32.const 2))))
    (local.set $p1 (i32.add (local.get $vals) (i32.shl (i32.load offset=4 (local.get $offs)) (i32.const 2))))
    (local.set $p2 (i32.add (local.get $vals) (i32.shl (i32.load offset=8 (local.get $offs)) (i32.const 2))))
    (local.set $p3 (i32.add (local.get $vals) (i32.shl (i32.load offset=12 (local.get $offs)) (i32.const 2))))
    (local.set $xs (i32.add (local.get $u) (i32.const 768)))
    (local.set $tv (i32.add (local.get $xs) (i32.shl (local.get $n) (i32.const 4))))
    (block $done (loop $rows
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $v (v128.load32_zero (local.get $p0)))
      (local.set $v (v128.load32_lane 1 (local.get $p1) (local.get $v)))
      (local.set $v (v128.load32_lane 2 (local.get $p2) (local.get $v)))
      (local.set $v (v128.load32_lane 3 (local.get $p3) (local.get $v)))
      (v128.store (local.get $xs) (local.get $v))
      (local.set $a (f64x2.promote_low_f32x4 (local.get $v)))
      (local.set $b (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v))))
      (v128.store (local.get $tv) (f64x2.sub (local.get $a) (local.get $mn0)))
      (v128.store offset=16 (local.get $tv) (f64x2.sub (local.get $b) (local.get $mn1)))
      (v128.store offset=32 (local.get $tv) (local.get $a))
      (v128.store offset=48 (local.get $tv) (local.get $b))
      (local.set $sx0 (f64x2.add (local.get $sx0) (local.get $a)))
      (local.set $sx1 (f64x2.add (local.get $sx1) (local.get $b)))
      (local.set $sxx0 (f64x2.add (local.get $sxx0) (f64x2.mul (local.get $a) (local.get $a))))
      (local.set $sxx1 (f64x2.add (local.get $sxx1) (f64x2.mul (local.get $b) (local.get $b))))
      (local.set $m (f64x2.gt (f64x2.abs (local.get $a)) (f64x2.abs (local.get $ex0))))
      (local.set $ex0 (v128.bitselect (local.get $a) (local.get $ex0) (local.get $m)))
      (local.set $m (f64x2.gt (f64x2.abs (local.get $b)) (f64x2.abs (local.get $ex1))))
      (local.set $ex1 (v128.bitselect (local.get $b) (local.get $ex1) (local.get $m)))
      (local.set $p0 (i32.add (local.get $p0) (i32.const 4)))
      (local.set $p1 (i32.add (local.get $p1) (i32.const 4)))
      (local.set $p2 (i32.add (local.get $p2) (i32.const 4)))
      (local.set $p3 (i32.add (local.get $p3) (i32.const 4)))
      (local.set $xs (i32.add (local.get $xs) (i32.const 16)))
      (local.set $tv (i32.add (local.get $tv) (i32.const 64)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $rows)))
    (v128.store (local.get $u) (local.get $sx0))
    (v128.store offset=16 (local.get $u) (local.get $sx1))
    (v128.store offset=32 (local.get $u) (local.get $sxx0))
    (v128.store offset=48 (local.get $u) (local.get $sxx1))
    (if (local.get $sym) (then
      ;; base = extreme < 0 ? −q_min : q_max
      (v128.store offset=64 (local.get $u) (v128.bitselect (f64x2.splat (f64.neg (local.get $qmin))) (f64x2.splat (local.get $qmax))
        (f64x2.lt (local.get $ex0) (f64x2.splat (f64.const 0)))))
      (v128.store offset=80 (local.get $u) (v128.bitselect (f64x2.splat (f64.neg (local.get $qmin))) (f64x2.splat (local.get $qmax))
        (f64x2.lt (local.get $ex1) (f64x2.splat (f64.const 0))))))))

  (func (export "lsq") (param $units i32) (param $n i32) (param $vals i32) (param $offs i32) (param $lo i32) (param $hi i32)
        (param $rs i32) (param $rz i32) (param $os i32) (param $oz i32) (param $tab i32) (param $count i32) (param $sym i32)
        (param $qmin f32) (param $qmax f32) (param $u i32)
    (local $k i32) (local $c i32) (local $g i32) (local $xs i32) (local $tv i32) (local $den0 v128) (local $den1 v128)
    (local $num f64) (local $m v128) (local $b i32) (local $cand i32) (local $nb i32) (local $centre v128) (local $zn v128) (local $nmax f64)
    (local.set $xs (i32.add (local.get $u) (i32.const 768)))
    (local.set $tv (i32.add (local.get $xs) (i32.shl (local.get $n) (i32.const 4))))
    (local.set $b (i32.add (local.get $u) (i32.const 384)))
    (local.set $cand (i32.add (local.get $u) (i32.const 512)))
    (local.set $nb (i32.add (local.get $u) (i32.const 640)))
    (local.set $nmax (f64.promote_f32 (f32.sub (local.get $qmax) (local.get $qmin))))
    (block $done (loop $each
      (br_if $done (i32.ge_u (local.get $k) (local.get $units)))
      (local.set $g (i32.shl (local.get $k) (i32.const 4)))
      (call $prep (local.get $vals) (i32.add (local.get $offs) (local.get $g)) (local.get $n)
        (i32.add (local.get $lo) (local.get $g)) (i32.add (local.get $hi) (local.get $g)) (local.get $sym)
        (f64.promote_f32 (local.get $qmin)) (f64.promote_f32 (local.get $qmax)) (local.get $u))
      ;; the start: round-to-nearest, scored exactly
      (v128.store (local.get $b) (v128.load (i32.add (local.get $rs) (local.get $g))))
      (v128.store offset=16 (local.get $b) (f32x4.convert_i32x4_s (v128.load (i32.add (local.get $rz) (local.get $g)))))
      (call $stored (local.get $xs) (local.get $n) (local.get $b) (local.get $qmin) (local.get $qmax))
      ;; the search
      (if (local.get $sym) (then
        (v128.store offset=128 (local.get $u) (f64x2.splat (f64.const -inf)))
        (v128.store offset=144 (local.get $u) (f64x2.splat (f64.const -inf))))
      (else
        (v128.store offset=128 (local.get $u) (v128.load offset=32 (local.get $b)))
        (v128.store offset=144 (local.get $u) (v128.load offset=48 (local.get $b)))
        (local.set $den0 (f64x2.sub (v128.load offset=96 (local.get $u)) (v128.load offset=64 (local.get $u))))
        (local.set $den1 (f64x2.sub (v128.load offset=112 (local.get $u)) (v128.load offset=80 (local.get $u))))))
      (v128.store offset=160 (local.get $u) (v128.const i64x2 0 0))
      (v128.store offset=176 (local.get $u) (v128.const i64x2 0 0))
      (v128.store offset=192 (local.get $u) (v128.const i64x2 0 0))
      (v128.store offset=208 (local.get $u) (v128.const i64x2 0 0))
      (v128.store offset=224 (local.get $u) (v128.const i64x2 0 0))
      (v128.store offset=240 (local.get $u) (v128.const i64x2 0 0))
      (local.set $c (i32.const 0))
      (block $cdone (loop $cands
        (br_if $cdone (i32.ge_u (local.get $c) (local.get $count)))
        (local.set $num (f64.load (i32.add (local.get $tab) (i32.shl (local.get $c) (i32.const 3)))))
        (if (local.get $sym) (then
          ;; iscale = (base + delta·is) / amax
          (call $scan (local.get $tv) (local.get $n) (i32.const 32)
            (f64x2.div (f64x2.add (v128.load offset=64 (local.get $u)) (f64x2.splat (local.get $num))) (v128.load offset=96 (local.get $u)))
            (f64x2.div (f64x2.add (v128.load offset=80 (local.get $u)) (f64x2.splat (local.get $num))) (v128.load offset=112 (local.get $u)))
            (f64.promote_f32 (local.get $qmin)) (f64.promote_f32 (local.get $qmax)) (local.get $u))
          (call $pickS (local.get $u))
          (call $pickS (i32.add (local.get $u) (i32.const 16))))
        (else
          ;; iscale = (rmin + rdelta·is + nmax) / (max − min)
          (call $scan (local.get $tv) (local.get $n) (i32.const 0)
            (f64x2.div (f64x2.splat (local.get $num)) (local.get $den0))
            (f64x2.div (f64x2.splat (local.get $num)) (local.get $den1))
            (f64.const 0) (local.get $nmax) (local.get $u))
          (call $pickA (local.get $u) (f64.convert_i32_u (local.get $n)) (local.get $nmax))
          (call $pickA (i32.add (local.get $u) (i32.const 16)) (f64.convert_i32_u (local.get $n)) (local.get $nmax))))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $cands)))
      ;; consider: the winner (d > 0 for symmetric; picked for asymmetric) at f32(d), scored
      ;; exactly, replaces the start when its error is lower
      (if (local.get $sym) (then
        (local.set $m (call $m32 (f64x2.gt (v128.load offset=160 (local.get $u)) (f64x2.splat (f64.const 0)))
          (f64x2.gt (v128.load offset=176 (local.get $u)) (f64x2.splat (f64.const 0)))))
        (v128.store offset=16 (local.get $cand) (f32x4.splat (f32.const 0))))
      (else
        (local.set $m (call $m32 (v128.load offset=224 (local.get $u)) (v128.load offset=240 (local.get $u))))
        (v128.store offset=16 (local.get $cand) (f32x4.add (f32x4.splat (local.get $qmin))
          (call $f32of (v128.load offset=192 (local.get $u)) (v128.load offset=208 (local.get $u)))))))
      (v128.store (local.get $cand) (call $f32of (v128.load offset=160 (local.get $u)) (v128.load offset=176 (local.get $u))))
      (local.set $m (v128.and (local.get $m) (v128.and (f32x4.gt (v128.load (local.get $cand)) (f32x4.splat (f32.const 0)))
        (f32x4.lt (v128.load (local.get $cand)) (f32x4.splat (f32.const inf))))))
      (if (v128.any_true (local.get $m)) (then
        (v128.store (local.get $cand) (v128.bitselect (v128.load (local.get $cand)) (v128.load (local.get $b)) (local.get $m)))
        (v128.store offset=16 (local.get $cand)
          (v128.bitselect (v128.load offset=16 (local.get $cand)) (v128.load offset=16 (local.get $b)) (local.get $m)))
        (call $stored (local.get $xs) (local.get $n) (local.get $cand) (local.get $qmin) (local.get $qmax))
        (call $merge (local.get $b) (local.get $cand) (v128.and (local.get $m) (call $m32
          (f64x2.lt (v128.load offset=32 (local.get $cand)) (v128.load offset=32 (local.get $b)))
          (f64x2.lt (v128.load offset=48 (local.get $cand)) (v128.load offset=48 (local.get $b))))))))
      (call $refit (local.get $b) (local.get $cand) (v128.const i32x4 -1 -1 -1 -1) (local.get $xs) (local.get $n) (local.get $qmin) (local.get $qmax))
      (if (i32.eqz (local.get $sym)) (then
        ;; the zero points one step either side, each with the same refit, in that order
        (local.set $centre (v128.load offset=16 (local.get $b)))
        (local.set $zn (f32x4.sub (local.get $centre) (f32x4.splat (f32.const 1))))
        (call $neighbour (local.get $b) (local.get $cand) (local.get $nb) (local.get $zn) (local.get $xs) (local.get $n) (local.get $qmin) (local.get $qmax))
        (local.set $zn (f32x4.add (local.get $centre) (f32x4.splat (f32.const 1))))
        (call $neighbour (local.get $b) (local.get $cand) (local.get $nb) (local.get $zn) (local.get $xs) (local.get $n) (local.get $qmin) (local.get $qmax))))
      (v128.store (i32.add (local.get $os) (local.get $g)) (v128.load (local.get $b)))
      (v128.store (i32.add (local.get $oz) (local.get $g)) (i32x4.trunc_sat_f32x4_s (v128.load offset=16 (local.get $b))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br $each))))

  ;; lsq.ts: the zero point $zn (lanes where it is in range) from the best scale, refitted;
  ;; it replaces the best where its error is lower.
  (func $neighbour (param $b i32) (param $c i32) (param $nb i32) (param $zn v128) (param $xs i32) (param $n i32) (param $qmin f32) (param $qmax f32)
    (local $ok v128)
    (local.set $ok (v128.and (f32x4.ge (local.get $zn) (f32x4.splat (local.get $qmin))) (f32x4.le (local.get $zn) (f32x4.splat (local.get $qmax)))))
    (if (i32.eqz (v128.any_true (local.get $ok))) (then (return)))
    (v128.store (local.get $nb) (v128.load (local.get $b)))
    (v128.store offset=16 (local.get $nb) (v128.bitselect (local.get $zn) (v128.load offset=16 (local.get $b)) (local.get $ok)))
    (call $stored (local.get $xs) (local.get $n) (local.get $nb) (local.get $qmin) (local.get $qmax))
    (call $refit (local.get $nb) (local.get $c) (local.get $ok) (local.get $xs) (local.get $n) (local.get $qmin) (local.get $qmax))
    (call $merge (local.get $b) (local.get $nb) (v128.and (local.get $ok) (call $m32
      (f64x2.lt (v128.load offset=32 (local.get $nb)) (v128.load offset=32 (local.get $b)))
      (f64x2.lt (v128.load offset=48 (local.get $nb)) (v128.load offset=48 (local.get $b)))))))
)

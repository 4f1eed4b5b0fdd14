;; lsq (methods/lsq.ts lsqGroup) for four groups of n values at a time, one group per float32
;; lane. Everything is float32, as the reference defines it: the same operations in the same
;; order within each group (the lanes are groups, never pieces of one group), so scale and
;; zero point come out bit for bit as the TypeScript reference gives them; only the final
;; test against rtn's score (refit-f32.ts lsqAcceptBelow) is float64. Unweighted only (the
;; reference's w_i = 1: f32(1·l) = l, so the products are the same).
;;
;; Per call: $units units of 4 groups; the g-th group's values are n float32 at
;; $vals + 4·offs[g]; lo[g], hi[g] its min-max range (float32), rs[g] / rz[g] its
;; round-to-nearest scale (f32) and zero point (i32); the result goes to os[g] / oz[g].
;; $tab: the $count candidates' numerators (float32, methods/lsq.ts lsqTable): asymmetric
;; rmin + rdelta·is + nmax, symmetric delta·is. $rounds: refit rounds; $nbr: 1 to try the
;; neighbouring zero points (asymmetric), each with $nrounds refit rounds; $c1, $c2: lsqMargin(n).
;; $u: scratch (640 bytes + 32·n).
;;
;; Scratch at $u (f32x4 fields, one group a lane, unless said):
;;   +0 swx   +16 swx2   +32 mn (min(lo, 0))   +48 width (asym: f32(max(hi, 0) − mn); sym: amax)
;;   +64 base (sym)   +80 sw (n)   +96 the scan's best error (asym) or score (sym)   +112 pick d
;;   +128 pick zp   +144 picked mask   +160 two candidates' sums (swl, swl2, swlx; +208 the second's)
;;   states (80 bytes: +0 scale, +16 zp (float), +32 err, +48 xl, +64 ll, as scoreF32 gives them):
;;   +256 rtn   +336 best   +416 candidate   +496 neighbour
;;   +640 rows: n × f32x4 v (the four groups' values), then n × f32x4 t = v − mn (asymmetric)
;; The hot loops clamp with pmin/pmax: no NaN reaches them in a lane whose result is used (the
;; caller sends only finite groups), and where they differ from min/max, the sign of a zero l,
;; no sum changes.
(module
  (import "env" "memory" (memory 1))
  ;; Passes over a unit's rows so far (candidate passes, two candidates each; scorings), for the bench.
  (global $scans (export "scans") (mut i32) (i32.const 0))
  (global $scorings (export "scorings") (mut i32) (i32.const 0))

  ;; refit-f32.ts scoreF32 for the state at $st: err = Σ e·e with e = f32(x − f32(l·scale)),
  ;; xl = Σ l·x, ll = Σ l·l, all float32, l as above.
  (func $score (param $xs i32) (param $n i32) (param $st i32) (param $qmin f32) (param $qmax f32)
    (local $end i32) (local $s v128) (local $lo v128) (local $hi v128) (local $v v128) (local $l v128) (local $e v128)
    (local $err v128) (local $xl v128) (local $ll v128)
    (global.set $scorings (i32.add (global.get $scorings) (i32.const 1)))
    (local.set $s (v128.load (local.get $st)))
    (local.set $lo (f32x4.sub (f32x4.splat (local.get $qmin)) (v128.load offset=16 (local.get $st))))
    (local.set $hi (f32x4.sub (f32x4.splat (local.get $qmax)) (v128.load offset=16 (local.get $st))))
    (local.set $end (i32.add (local.get $xs) (i32.shl (local.get $n) (i32.const 4))))
    (block $done (loop $rows
      (br_if $done (i32.ge_u (local.get $xs) (local.get $end)))
      (local.set $v (v128.load (local.get $xs)))
      (local.set $l (f32x4.pmin (f32x4.pmax (f32x4.nearest (f32x4.div (local.get $v) (local.get $s))) (local.get $lo)) (local.get $hi)))
      (local.set $e (f32x4.sub (local.get $v) (f32x4.mul (local.get $l) (local.get $s))))
      (local.set $err (f32x4.add (local.get $err) (f32x4.mul (local.get $e) (local.get $e))))
      (local.set $xl (f32x4.add (local.get $xl) (f32x4.mul (local.get $l) (local.get $v))))
      (local.set $ll (f32x4.add (local.get $ll) (f32x4.mul (local.get $l) (local.get $l))))
      (local.set $xs (i32.add (local.get $xs) (i32.const 16)))
      (br $rows)))
    (v128.store offset=32 (local.get $st) (local.get $err))
    (v128.store offset=48 (local.get $st) (local.get $xl))
    (v128.store offset=64 (local.get $st) (local.get $ll)))

  ;; The state at $src into the one at $dst in the lanes of the mask $m.
  (func $merge (param $dst i32) (param $src i32) (param $m v128)
    (v128.store (local.get $dst) (v128.bitselect (v128.load (local.get $src)) (v128.load (local.get $dst)) (local.get $m)))
    (v128.store offset=16 (local.get $dst) (v128.bitselect (v128.load offset=16 (local.get $src)) (v128.load offset=16 (local.get $dst)) (local.get $m)))
    (v128.store offset=32 (local.get $dst) (v128.bitselect (v128.load offset=32 (local.get $src)) (v128.load offset=32 (local.get $dst)) (local.get $m)))
    (v128.store offset=48 (local.get $dst) (v128.bitselect (v128.load offset=48 (local.get $src)) (v128.load offset=48 (local.get $dst)) (local.get $m)))
    (v128.store offset=64 (local.get $dst) (v128.bitselect (v128.load offset=64 (local.get $src)) (v128.load offset=64 (local.get $dst)) (local.get $m))))

  ;; refit-f32.ts refitScaleF32 on the state at $b in the lanes of $act (its sums are its own
  ;; score), up to $rounds rounds, $c as scratch: scale = f32(xl / ll) while it is positive,
  ;; finite and new and lowers the error; a lane that stops stays stopped.
  (func $refit (param $b i32) (param $c i32) (param $act v128) (param $rounds i32) (param $xs i32) (param $n i32) (param $qmin f32) (param $qmax f32)
    (local $r i32) (local $ns v128) (local $better v128)
    (block $done (loop $each
      (br_if $done (i32.ge_u (local.get $r) (local.get $rounds)))
      (local.set $ns (f32x4.div (v128.load offset=48 (local.get $b)) (v128.load offset=64 (local.get $b))))
      (local.set $act (v128.and (local.get $act) (v128.and
        (v128.and (f32x4.gt (v128.load offset=64 (local.get $b)) (f32x4.splat (f32.const 0))) (f32x4.gt (local.get $ns) (f32x4.splat (f32.const 0))))
        (v128.and (f32x4.lt (local.get $ns) (f32x4.splat (f32.const inf))) (f32x4.ne (local.get $ns) (v128.load (local.get $b)))))))
      (br_if $done (i32.eqz (v128.any_true (local.get $act))))
      (v128.store (local.get $c) (v128.bitselect (local.get $ns) (v128.load (local.get $b)) (local.get $act)))
      (v128.store offset=16 (local.get $c) (v128.load offset=16 (local.get $b)))
      (call $score (local.get $xs) (local.get $n) (local.get $c) (local.get $qmin) (local.get $qmax))
      (local.set $better (v128.and (local.get $act) (f32x4.lt (v128.load offset=32 (local.get $c)) (v128.load offset=32 (local.get $b)))))
      (call $merge (local.get $b) (local.get $c) (local.get $better))
      (local.set $act (local.get $better))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $each))))

  ;; Two asymmetric candidates' sums over the rows: l = min(round(iscale·t), nmax) (t ≥ 0 and
  ;; iscale > 0, so l ≥ 0 already); Σ l, Σ l², Σ l·v into $u + 160 (first) and $u + 208 (second).
  (func $scanA (param $xs i32) (param $n i32) (param $i0 v128) (param $i1 v128) (param $nmax v128) (param $u i32)
    (local $end i32) (local $ts i32) (local $t v128) (local $v v128) (local $l v128) (local $m v128)
    (local $a0 v128) (local $b0 v128) (local $c0 v128) (local $a1 v128) (local $b1 v128) (local $c1 v128)
    (global.set $scans (i32.add (global.get $scans) (i32.const 1)))
    (local.set $end (i32.add (local.get $xs) (i32.shl (local.get $n) (i32.const 4))))
    (local.set $ts (local.get $end))
    (block $done (loop $rows
      (br_if $done (i32.ge_u (local.get $xs) (local.get $end)))
      (local.set $v (v128.load (local.get $xs)))
      (local.set $t (v128.load (local.get $ts)))
      (local.set $l (f32x4.pmin (f32x4.nearest (f32x4.mul (local.get $i0) (local.get $t))) (local.get $nmax)))
      (local.set $a0 (f32x4.add (local.get $a0) (local.get $l)))
      (local.set $b0 (f32x4.add (local.get $b0) (f32x4.mul (local.get $l) (local.get $l))))
      (local.set $c0 (f32x4.add (local.get $c0) (f32x4.mul (local.get $l) (local.get $v))))
      (local.set $m (f32x4.pmin (f32x4.nearest (f32x4.mul (local.get $i1) (local.get $t))) (local.get $nmax)))
      (local.set $a1 (f32x4.add (local.get $a1) (local.get $m)))
      (local.set $b1 (f32x4.add (local.get $b1) (f32x4.mul (local.get $m) (local.get $m))))
      (local.set $c1 (f32x4.add (local.get $c1) (f32x4.mul (local.get $m) (local.get $v))))
      (local.set $xs (i32.add (local.get $xs) (i32.const 16)))
      (local.set $ts (i32.add (local.get $ts) (i32.const 16)))
      (br $rows)))
    (v128.store offset=160 (local.get $u) (local.get $a0))
    (v128.store offset=176 (local.get $u) (local.get $b0))
    (v128.store offset=192 (local.get $u) (local.get $c0))
    (v128.store offset=208 (local.get $u) (local.get $a1))
    (v128.store offset=224 (local.get $u) (local.get $b1))
    (v128.store offset=240 (local.get $u) (local.get $c1)))

  ;; Two symmetric candidates' sums: l = clamp(round(iscale·v), q_min, q_max); Σ l², Σ l·v
  ;; into $u + 176, 192 (first) and $u + 224, 240 (second).
  (func $scanS (param $xs i32) (param $n i32) (param $i0 v128) (param $i1 v128) (param $lo v128) (param $hi v128) (param $u i32)
    (local $end i32) (local $v v128) (local $l v128) (local $m v128)
    (local $b0 v128) (local $c0 v128) (local $b1 v128) (local $c1 v128)
    (global.set $scans (i32.add (global.get $scans) (i32.const 1)))
    (local.set $end (i32.add (local.get $xs) (i32.shl (local.get $n) (i32.const 4))))
    (block $done (loop $rows
      (br_if $done (i32.ge_u (local.get $xs) (local.get $end)))
      (local.set $v (v128.load (local.get $xs)))
      (local.set $l (f32x4.pmin (f32x4.pmax (f32x4.nearest (f32x4.mul (local.get $i0) (local.get $v))) (local.get $lo)) (local.get $hi)))
      (local.set $b0 (f32x4.add (local.get $b0) (f32x4.mul (local.get $l) (local.get $l))))
      (local.set $c0 (f32x4.add (local.get $c0) (f32x4.mul (local.get $l) (local.get $v))))
      (local.set $m (f32x4.pmin (f32x4.pmax (f32x4.nearest (f32x4.mul (local.get $i1) (local.get $v))) (local.get $lo)) (local.get $hi)))
      (local.set $b1 (f32x4.add (local.get $b1) (f32x4.mul (local.get $m) (local.get $m))))
      (local.set $c1 (f32x4.add (local.get $c1) (f32x4.mul (local.get $m) (local.get $v))))
      (local.set $xs (i32.add (local.get $xs) (i32.const 16)))
      (br $rows)))
    (v128.store offset=176 (local.get $u) (local.get $b0))
    (v128.store offset=192 (local.get $u) (local.get $c0))
    (v128.store offset=224 (local.get $u) (local.get $b1))
    (v128.store offset=240 (local.get $u) (local.get $c1)))

  ;; make_qkx2's step for the candidate whose sums are at $u + $at (lsq.ts searchAsymmetric):
  ;; the 2×2 least squares, the zero point rounded and the scale refitted with it held, and
  ;; that form's error from the same sums; kept when lower than the best so far.
  (func $pickA (param $u i32) (param $at i32) (param $nmax v128) (param $qmin v128)
    (local $s i32) (local $sw v128) (local $swl v128) (local $swl2 v128) (local $swlx v128) (local $swx v128)
    (local $D v128) (local $d v128) (local $m v128) (local $mp v128) (local $ok v128) (local $zp v128)
    (local $num v128) (local $den v128) (local $d2 v128) (local $err v128)
    (local.set $s (i32.add (local.get $u) (local.get $at)))
    (local.set $swl (v128.load (local.get $s)))
    (local.set $swl2 (v128.load offset=16 (local.get $s)))
    (local.set $swlx (v128.load offset=32 (local.get $s)))
    (local.set $swx (v128.load (local.get $u)))
    (local.set $sw (v128.load offset=80 (local.get $u)))
    (local.set $D (f32x4.sub (f32x4.mul (local.get $sw) (local.get $swl2)) (f32x4.mul (local.get $swl) (local.get $swl))))
    (local.set $d (f32x4.div (f32x4.sub (f32x4.mul (local.get $sw) (local.get $swlx)) (f32x4.mul (local.get $swx) (local.get $swl))) (local.get $D)))
    (local.set $m (f32x4.div (f32x4.sub (f32x4.mul (local.get $swl2) (local.get $swx)) (f32x4.mul (local.get $swl) (local.get $swlx))) (local.get $D)))
    (local.set $mp (f32x4.gt (local.get $m) (f32x4.splat (f32.const 0))))
    (local.set $m (v128.andnot (local.get $m) (local.get $mp)))
    (local.set $d (v128.bitselect (f32x4.div (local.get $swlx) (local.get $swl2)) (local.get $d) (local.get $mp)))
    ;; the range must be non-empty (max > min), D > 0 and d > 0
    (local.set $ok (v128.and (f32x4.gt (v128.load offset=48 (local.get $u)) (f32x4.splat (f32.const 0)))
      (v128.and (f32x4.gt (local.get $D) (f32x4.splat (f32.const 0))) (f32x4.gt (local.get $d) (f32x4.splat (f32.const 0))))))
    (local.set $zp (f32x4.min (f32x4.max (f32x4.nearest (f32x4.div (f32x4.neg (local.get $m)) (local.get $d)))
      (f32x4.splat (f32.const 0))) (local.get $nmax)))
    (local.set $num (f32x4.sub (local.get $swlx) (f32x4.mul (local.get $zp) (local.get $swx))))
    (local.set $den (f32x4.add
      (f32x4.sub (local.get $swl2) (f32x4.mul (f32x4.mul (f32x4.splat (f32.const 2)) (local.get $zp)) (local.get $swl)))
      (f32x4.mul (f32x4.mul (local.get $zp) (local.get $zp)) (local.get $sw))))
    (local.set $ok (v128.and (local.get $ok) (f32x4.gt (local.get $den) (f32x4.splat (f32.const 0)))))
    (local.set $d2 (f32x4.div (local.get $num) (local.get $den)))
    (local.set $ok (v128.and (local.get $ok) (v128.and (f32x4.gt (local.get $d2) (f32x4.splat (f32.const 0)))
      (f32x4.lt (local.get $d2) (f32x4.splat (f32.const inf))))))
    (local.set $err (f32x4.add
      (f32x4.sub (v128.load offset=16 (local.get $u)) (f32x4.mul (f32x4.mul (f32x4.splat (f32.const 2)) (local.get $d2)) (local.get $num)))
      (f32x4.mul (f32x4.mul (local.get $d2) (local.get $d2)) (local.get $den))))
    (local.set $ok (v128.and (local.get $ok) (f32x4.lt (local.get $err) (v128.load offset=96 (local.get $u)))))
    (v128.store offset=96 (local.get $u) (v128.bitselect (local.get $err) (v128.load offset=96 (local.get $u)) (local.get $ok)))
    (v128.store offset=112 (local.get $u) (v128.bitselect (local.get $d2) (v128.load offset=112 (local.get $u)) (local.get $ok)))
    (v128.store offset=128 (local.get $u) (v128.bitselect (f32x4.add (local.get $zp) (local.get $qmin)) (v128.load offset=128 (local.get $u)) (local.get $ok)))
    (v128.store offset=144 (local.get $u) (v128.or (v128.load offset=144 (local.get $u)) (local.get $ok))))

  ;; make_qx's step for the candidate whose sums are at $u + $at: keep the largest (Σxl)²/Σl²
  ;; (lsq.ts searchSymmetric).
  (func $pickS (param $u i32) (param $at i32)
    (local $s i32) (local $lx v128) (local $l2 v128) (local $score v128) (local $ok v128)
    (local.set $s (i32.add (local.get $u) (local.get $at)))
    (local.set $l2 (v128.load offset=16 (local.get $s)))
    (local.set $lx (v128.load offset=32 (local.get $s)))
    (local.set $score (f32x4.div (f32x4.mul (local.get $lx) (local.get $lx)) (local.get $l2)))
    (local.set $ok (v128.and (v128.and (f32x4.gt (v128.load offset=48 (local.get $u)) (f32x4.splat (f32.const 0)))
      (f32x4.gt (local.get $l2) (f32x4.splat (f32.const 0))))
      (v128.and (f32x4.gt (local.get $lx) (f32x4.splat (f32.const 0))) (f32x4.gt (local.get $score) (v128.load offset=96 (local.get $u))))))
    (v128.store offset=96 (local.get $u) (v128.bitselect (local.get $score) (v128.load offset=96 (local.get $u)) (local.get $ok)))
    (v128.store offset=112 (local.get $u) (v128.bitselect (f32x4.div (local.get $lx) (local.get $l2)) (v128.load offset=112 (local.get $u)) (local.get $ok))))

  ;; The unit's rows (v, then t = v − mn at $xs + 16·n) and its lanes' fields (see the top):
  ;; swx = Σ x, swx2 = Σ x·x (float32, element order), the extreme (sym) picks the base, and
  ;; rtn's score ($score's sums, in the same pass) into the rtn state, whose scale and zero point are set.
  (func $prep (param $vals i32) (param $offs i32) (param $n i32) (param $lo i32) (param $hi i32) (param $sym i32) (param $qmin f32) (param $qmax f32) (param $u i32)
    (local $p0 i32) (local $p1 i32) (local $p2 i32) (local $p3 i32) (local $i i32) (local $xs i32) (local $ts i32)
    (local $v v128) (local $mn v128) (local $lo4 v128) (local $hi4 v128)
    (local $sx v128) (local $sxx v128) (local $ex v128)
    (local $s v128) (local $ql v128) (local $qh v128) (local $l v128) (local $e v128) (local $err v128) (local $xl v128) (local $ll v128)
    (local.set $s (v128.load offset=256 (local.get $u)))
    (local.set $ql (f32x4.sub (f32x4.splat (local.get $qmin)) (v128.load offset=272 (local.get $u))))
    (local.set $qh (f32x4.sub (f32x4.splat (local.get $qmax)) (v128.load offset=272 (local.get $u))))
    (local.set $lo4 (v128.load (local.get $lo)))
    (local.set $hi4 (v128.load (local.get $hi)))
    (if (local.get $sym) (then
      (v128.store offset=48 (local.get $u) (f32x4.max (f32x4.abs (local.get $lo4)) (f32x4.abs (local.get $hi4)))))
    (else
      (local.set $mn (f32x4.min (local.get $lo4) (f32x4.splat (f32.const 0))))
      (v128.store offset=32 (local.get $u) (local.get $mn))
      (v128.store offset=48 (local.get $u) (f32x4.sub (f32x4.max (local.get $hi4) (f32x4.splat (f32.const 0))) (local.get $mn)))))
    (v128.store offset=80 (local.get $u) (f32x4.splat (f32.convert_i32_u (local.get $n))))
    (local.set $p0 (i32.add (local.get $vals) (i32.shl (i32.load (local.get $offs)) (i32.const 2))))
    (local.set $p1 (i32.add (local.get $vals) (i32.shl (i32.load offset=4 (local.get $offs)) (i32.const 2))))
    (local.set $p2 (i32.add (local.get $vals) (i32.shl (i32.load offset=8 (local.get $offs)) (i32.const 2))))
    (local.set $p3 (i32.add (local.get $vals) (i32.shl (i32.load offset=12 (local.get $offs)) (i32.const 2))))
    (local.set $xs (i32.add (local.get $u) (i32.const 640)))
    (local.set $ts (i32.add (local.get $xs) (i32.shl (local.get $n) (i32.const 4))))
    (block $done (loop $rows
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $v (v128.load32_zero (local.get $p0)))
      (local.set $v (v128.load32_lane 1 (local.get $p1) (local.get $v)))
      (local.set $v (v128.load32_lane 2 (local.get $p2) (local.get $v)))
      (local.set $v (v128.load32_lane 3 (local.get $p3) (local.get $v)))
      (v128.store (local.get $xs) (local.get $v))
      (v128.store (local.get $ts) (f32x4.sub (local.get $v) (local.get $mn)))
      (local.set $sx (f32x4.add (local.get $sx) (local.get $v)))
      (local.set $sxx (f32x4.add (local.get $sxx) (f32x4.mul (local.get $v) (local.get $v))))
      (local.set $ex (v128.bitselect (local.get $v) (local.get $ex) (f32x4.gt (f32x4.abs (local.get $v)) (f32x4.abs (local.get $ex)))))
      (local.set $l (f32x4.pmin (f32x4.pmax (f32x4.nearest (f32x4.div (local.get $v) (local.get $s))) (local.get $ql)) (local.get $qh)))
      (local.set $e (f32x4.sub (local.get $v) (f32x4.mul (local.get $l) (local.get $s))))
      (local.set $err (f32x4.add (local.get $err) (f32x4.mul (local.get $e) (local.get $e))))
      (local.set $xl (f32x4.add (local.get $xl) (f32x4.mul (local.get $l) (local.get $v))))
      (local.set $ll (f32x4.add (local.get $ll) (f32x4.mul (local.get $l) (local.get $l))))
      (local.set $p0 (i32.add (local.get $p0) (i32.const 4)))
      (local.set $p1 (i32.add (local.get $p1) (i32.const 4)))
      (local.set $p2 (i32.add (local.get $p2) (i32.const 4)))
      (local.set $p3 (i32.add (local.get $p3) (i32.const 4)))
      (local.set $xs (i32.add (local.get $xs) (i32.const 16)))
      (local.set $ts (i32.add (local.get $ts) (i32.const 16)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $rows)))
    (v128.store (local.get $u) (local.get $sx))
    (v128.store offset=16 (local.get $u) (local.get $sxx))
    (v128.store offset=288 (local.get $u) (local.get $err))
    (v128.store offset=304 (local.get $u) (local.get $xl))
    (v128.store offset=320 (local.get $u) (local.get $ll))
    ;; base = extreme < 0 ? −q_min : q_max
    (v128.store offset=64 (local.get $u) (v128.bitselect (f32x4.splat (f32.neg (local.get $qmin))) (f32x4.splat (local.get $qmax))
      (f32x4.lt (local.get $ex) (f32x4.splat (f32.const 0))))))

  ;; lsq.ts: the zero point $zn (lanes where it is in range) from the best scale, refitted;
  ;; it replaces the best where its error is lower.
  (func $neighbour (param $b i32) (param $c i32) (param $nb i32) (param $zn v128) (param $rounds i32) (param $xs i32) (param $n i32) (param $qmin f32) (param $qmax f32)
    (local $ok v128)
    (local.set $ok (v128.and (f32x4.ge (local.get $zn) (f32x4.splat (local.get $qmin))) (f32x4.le (local.get $zn) (f32x4.splat (local.get $qmax)))))
    (if (i32.eqz (v128.any_true (local.get $ok))) (then (return)))
    (v128.store (local.get $nb) (v128.load (local.get $b)))
    (v128.store offset=16 (local.get $nb) (v128.bitselect (local.get $zn) (v128.load offset=16 (local.get $b)) (local.get $ok)))
    (call $score (local.get $xs) (local.get $n) (local.get $nb) (local.get $qmin) (local.get $qmax))
    (call $refit (local.get $nb) (local.get $c) (local.get $ok) (local.get $rounds) (local.get $xs) (local.get $n) (local.get $qmin) (local.get $qmax))
    (call $merge (local.get $b) (local.get $nb) (v128.and (local.get $ok)
      (f32x4.lt (v128.load offset=32 (local.get $nb)) (v128.load offset=32 (local.get $b))))))

  (func (export "lsq") (param $units i32) (param $n i32) (param $vals i32) (param $offs i32) (param $lo i32) (param $hi i32)
        (param $rs i32) (param $rz i32) (param $os i32) (param $oz i32) (param $tab i32) (param $count i32) (param $sym i32)
        (param $qmin f32) (param $qmax f32) (param $rounds i32) (param $nbr i32) (param $nrounds i32) (param $c1 f64) (param $c2 f64) (param $u i32)
    (local $k i32) (local $c i32) (local $c1i i32) (local $g i32) (local $xs i32) (local $m v128) (local $w v128)
    (local $b i32) (local $cand i32) (local $nb i32) (local $centre v128) (local $nmax v128) (local $q0 v128) (local $q1 v128)
    (local $take v128) (local $re v128) (local $be v128)
    (local.set $xs (i32.add (local.get $u) (i32.const 640)))
    (local.set $b (i32.add (local.get $u) (i32.const 336)))
    (local.set $cand (i32.add (local.get $u) (i32.const 416)))
    (local.set $nb (i32.add (local.get $u) (i32.const 496)))
    (local.set $nmax (f32x4.splat (f32.sub (local.get $qmax) (local.get $qmin))))
    (local.set $q0 (f32x4.splat (local.get $qmin)))
    (local.set $q1 (f32x4.splat (local.get $qmax)))
    (block $done (loop $each
      (br_if $done (i32.ge_u (local.get $k) (local.get $units)))
      (local.set $g (i32.shl (local.get $k) (i32.const 4)))
      ;; rtn, scored in the rows' pass: the floor the result must beat
      (v128.store offset=256 (local.get $u) (v128.load (i32.add (local.get $rs) (local.get $g))))
      (v128.store offset=272 (local.get $u) (f32x4.convert_i32x4_s (v128.load (i32.add (local.get $rz) (local.get $g)))))
      (call $prep (local.get $vals) (i32.add (local.get $offs) (local.get $g)) (local.get $n)
        (i32.add (local.get $lo) (local.get $g)) (i32.add (local.get $hi) (local.get $g)) (local.get $sym)
        (local.get $qmin) (local.get $qmax) (local.get $u))
      ;; the search: asymmetric candidates must beat rtn's score, symmetric ones start at −∞
      (v128.store offset=96 (local.get $u) (select (f32x4.splat (f32.const -inf)) (v128.load offset=288 (local.get $u)) (local.get $sym)))
      (v128.store offset=112 (local.get $u) (v128.const i64x2 0 0))
      (v128.store offset=128 (local.get $u) (v128.const i64x2 0 0))
      (v128.store offset=144 (local.get $u) (v128.const i64x2 0 0))
      (local.set $w (v128.load offset=48 (local.get $u)))
      (local.set $c (i32.const 0))
      (block $cdone (loop $cands
        (br_if $cdone (i32.ge_u (local.get $c) (local.get $count)))
        ;; two candidates a pass; an odd last one is paired with itself and picked once
        (local.set $c1i (select (i32.add (local.get $c) (i32.const 1)) (local.get $c)
          (i32.lt_u (i32.add (local.get $c) (i32.const 1)) (local.get $count))))
        (if (local.get $sym) (then
          ;; iscale = f32(f32(base + delta·is) / amax)
          (call $scanS (local.get $xs) (local.get $n)
            (f32x4.div (f32x4.add (v128.load offset=64 (local.get $u)) (f32x4.splat (f32.load (i32.add (local.get $tab) (i32.shl (local.get $c) (i32.const 2)))))) (local.get $w))
            (f32x4.div (f32x4.add (v128.load offset=64 (local.get $u)) (f32x4.splat (f32.load (i32.add (local.get $tab) (i32.shl (local.get $c1i) (i32.const 2)))))) (local.get $w))
            (local.get $q0) (local.get $q1) (local.get $u))
          (call $pickS (local.get $u) (i32.const 160))
          (if (i32.ne (local.get $c1i) (local.get $c)) (then (call $pickS (local.get $u) (i32.const 208)))))
        (else
          ;; iscale = f32(f32(rmin + rdelta·is + nmax) / width)
          (call $scanA (local.get $xs) (local.get $n)
            (f32x4.div (f32x4.splat (f32.load (i32.add (local.get $tab) (i32.shl (local.get $c) (i32.const 2))))) (local.get $w))
            (f32x4.div (f32x4.splat (f32.load (i32.add (local.get $tab) (i32.shl (local.get $c1i) (i32.const 2))))) (local.get $w))
            (local.get $nmax) (local.get $u))
          (call $pickA (local.get $u) (i32.const 160) (local.get $nmax) (local.get $q0))
          (if (i32.ne (local.get $c1i) (local.get $c)) (then (call $pickA (local.get $u) (i32.const 208) (local.get $nmax) (local.get $q0))))))
        (local.set $c (i32.add (local.get $c) (i32.const 2)))
        (br $cands)))
      ;; the start of the refit: the pick where there is one (sym: d > 0 and finite), else rtn
      (if (local.get $sym) (then
        (local.set $m (v128.and (f32x4.gt (v128.load offset=112 (local.get $u)) (f32x4.splat (f32.const 0)))
          (f32x4.lt (v128.load offset=112 (local.get $u)) (f32x4.splat (f32.const inf))))))
      (else (local.set $m (v128.load offset=144 (local.get $u)))))
      (v128.store (local.get $b) (v128.bitselect (v128.load offset=112 (local.get $u)) (v128.load offset=256 (local.get $u)) (local.get $m)))
      (v128.store offset=16 (local.get $b) (v128.bitselect (v128.load offset=128 (local.get $u)) (v128.load offset=272 (local.get $u)) (local.get $m)))
      (call $score (local.get $xs) (local.get $n) (local.get $b) (local.get $qmin) (local.get $qmax))
      (call $refit (local.get $b) (local.get $cand) (v128.const i32x4 -1 -1 -1 -1) (local.get $rounds) (local.get $xs) (local.get $n) (local.get $qmin) (local.get $qmax))
      (if (i32.and (i32.eqz (local.get $sym)) (local.get $nbr)) (then
        ;; the zero points one step either side, each with its refit, in that order
        (local.set $centre (v128.load offset=16 (local.get $b)))
        (call $neighbour (local.get $b) (local.get $cand) (local.get $nb) (f32x4.sub (local.get $centre) (f32x4.splat (f32.const 1)))
          (local.get $nrounds) (local.get $xs) (local.get $n) (local.get $qmin) (local.get $qmax))
        (call $neighbour (local.get $b) (local.get $cand) (local.get $nb) (f32x4.add (local.get $centre) (f32x4.splat (f32.const 1)))
          (local.get $nrounds) (local.get $xs) (local.get $n) (local.get $qmin) (local.get $qmax))))
      ;; kept where it differs from rtn and its score is below lsqAcceptBelow(rtn's score), in float64
      (local.set $re (v128.load offset=288 (local.get $u)))
      (local.set $be (v128.load offset=32 (local.get $b)))
      (local.set $take (v128.and
        (v128.or (f32x4.ne (v128.load (local.get $b)) (v128.load offset=256 (local.get $u)))
          (f32x4.ne (v128.load offset=16 (local.get $b)) (v128.load offset=272 (local.get $u))))
        (v128.and (f32x4.lt (local.get $re) (f32x4.splat (f32.const inf)))
          (i8x16.shuffle 0 1 2 3 8 9 10 11 16 17 18 19 24 25 26 27
            (f64x2.lt (f64x2.promote_low_f32x4 (local.get $be))
              (f64x2.sub (f64x2.mul (f64x2.promote_low_f32x4 (local.get $re)) (f64x2.splat (local.get $c1))) (f64x2.splat (local.get $c2))))
            (f64x2.lt (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $be) (local.get $be)))
              (f64x2.sub (f64x2.mul (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $re) (local.get $re)))
                (f64x2.splat (local.get $c1))) (f64x2.splat (local.get $c2))))))))
      (v128.store (i32.add (local.get $os) (local.get $g))
        (v128.bitselect (v128.load (local.get $b)) (v128.load offset=256 (local.get $u)) (local.get $take)))
      (v128.store (i32.add (local.get $oz) (local.get $g))
        (i32x4.trunc_sat_f32x4_s (v128.bitselect (v128.load offset=16 (local.get $b)) (v128.load offset=272 (local.get $u)) (local.get $take))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br $each))))
)

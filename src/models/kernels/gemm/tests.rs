//! The packed products on every kernel family this CPU runs, against a float64 reference; int8 bit for bit
//! across families.

use super::pack::{bf16_to_f32, f32_to_bf16};
use super::*;
use crate::models::kernels::isa;

fn reference(a: &[f32], w: &[f32], m: usize, n: usize, k: usize, bias: Option<&[f32]>) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k).map(|kk| a[i * k + kk] as f64 * w[j * k + kk] as f64).sum();
            out[i * n + j] = s as f32 + bias.map_or(0.0, |b| b[j]);
        }
    }
    out
}

fn pseudo(len: usize, seed: u32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

const SHAPES: [(usize, usize, usize); 11] = [
    (1, 1, 1),
    (1, 70, 40),
    (2, 40, 33),
    (3, 33, 7),
    (5, 17, 18),
    (12, 32, 16),
    (13, 65, 31),
    (29, 100, 64),
    (4, 7, 129),
    (40, 96, 3),
    (7, 48, 258),
];

fn product(isa: Isa, p: Precision, (m, n, k): (usize, usize, usize), bias: Option<&[f32]>) -> Vec<f32> {
    let (a, w) = (pseudo(m * k, 1), pseudo(n * k, 2));
    let mut got = vec![0f32; m * n];
    PackedMatrix::pack(&w, n, k, p).matmul_on(isa, &a, m, bias, None, &mut got);
    got
}

#[test]
fn f32_products_match_a_float64_reference_on_every_family() {
    for isa in isa::available() {
        for shape @ (m, n, k) in SHAPES {
            let bias = pseudo(n, 3);
            let want = reference(&pseudo(m * k, 1), &pseudo(n * k, 2), m, n, k, Some(&bias));
            for (g, r) in product(isa, Precision::F32, shape, Some(&bias)).iter().zip(&want) {
                assert!((g - r).abs() <= 1e-4 * (1.0 + r.abs()), "{isa} f32 {m}x{n}x{k}: {g} vs {r}");
            }
        }
    }
}

#[test]
fn bf16_products_match_the_rounded_reference_on_every_family() {
    let round = |v: Vec<f32>| v.into_iter().map(|x| bf16_to_f32(f32_to_bf16(x))).collect::<Vec<_>>();
    for isa in isa::available() {
        for shape @ (m, n, k) in SHAPES {
            let want = reference(&round(pseudo(m * k, 1)), &round(pseudo(n * k, 2)), m, n, k, None);
            for (g, r) in product(isa, Precision::Bf16, shape, None).iter().zip(&want) {
                assert!((g - r).abs() <= 1e-4 * (1.0 + (k as f32).sqrt()), "{isa} bf16 {m}x{n}x{k}: {g} vs {r}");
            }
        }
    }
}

/// int8: the exact integer products of the quantised values, scaled once; every family gives the same bits,
/// for weights of 8 bits and of 7 (as packed for plain AVX2).
#[test]
fn int8_products_are_exact_and_the_same_on_every_family() {
    for bits in [8, 7] {
        let limit = ((1 << (bits - 1)) - 1) as f32;
        for (m, n, k) in SHAPES {
            let (a, w) = (pseudo(m * k, 1), pseudo(n * k, 2));
            let bias = pseudo(n, 3);
            let quantised = |x: &[f32], rows: usize, limit: f32| -> (Vec<i32>, Vec<f32>) {
                let mut q = Vec::new();
                let mut scales = Vec::new();
                for row in x.chunks(k).take(rows) {
                    let s = row.iter().fold(0f32, |m, v| m.max(v.abs())) / limit;
                    q.extend(row.iter().map(|&v| (v * (1.0 / s)).round_ties_even().clamp(-limit, limit) as i32));
                    scales.push(s);
                }
                (q, scales)
            };
            let ((qa, sa), (qw, sw)) = (quantised(&a, m, 127.0), quantised(&w, n, limit));
            let want: Vec<f32> = (0..m * n)
                .map(|ij| {
                    let (i, j) = (ij / n, ij % n);
                    let dot: i32 = (0..k).map(|kk| qa[i * k + kk] * qw[j * k + kk]).sum();
                    dot as f32 * (sa[i] * sw[j]) + bias[j]
                })
                .collect();
            let exact = reference(&a, &w, m, n, k, Some(&bias));
            let packed = PackedMatrix::pack_bits(&w, n, k, Precision::Int8, bits);
            for isa in isa::available() {
                let mut got = vec![0f32; m * n];
                packed.matmul_on(isa, &a, m, Some(&bias), None, &mut got);
                assert_eq!(got, want, "{isa} int8 ({bits}-bit weights) {m}x{n}x{k}");
                let tolerance = 0.02 * (127.0 / limit) * (1.0 + (k as f32).sqrt());
                for (g, r) in got.iter().zip(&exact) {
                    assert!((g - r).abs() <= tolerance, "{isa} int8 ({bits}-bit) {m}x{n}x{k}: {g} vs {r}");
                }
            }
        }
    }
}

/// The largest sums the 7-bit kernel meets (activations at ±127, so 255 or 1 once offset, times weights at
/// ±63) are exact: no i16 pair saturates.
#[test]
fn int8_7bit_weights_never_saturate() {
    let (m, n, k) = (13, 40, 64);
    let a: Vec<f32> = (0..m * k).map(|i| if (i / k) % 2 == 0 { 1.0 } else { -1.0 }).collect();
    let w: Vec<f32> = (0..n * k).map(|i| if (i / k + i % 3) % 2 == 0 { 2.0 } else { -2.0 }).collect();
    let packed = PackedMatrix::pack_bits(&w, n, k, Precision::Int8, 7);
    let want = reference(&a, &w, m, n, k, None);
    for isa in isa::available() {
        let mut got = vec![0f32; m * n];
        packed.matmul_on(isa, &a, m, None, None, &mut got);
        for (g, r) in got.iter().zip(&want) {
            assert!((g - r).abs() <= 1e-3 * r.abs().max(1.0), "{isa}: {g} vs {r}");
        }
    }
}

#[test]
fn int8_weights_take_7_bits_only_where_plain_avx2_multiplies_them() {
    assert_eq!(int8_weight_bits(Isa::Portable), 8);
    assert_eq!(int8_weight_bits(Isa::Avx2), if Isa::Avx2.supported() { 7 } else { 8 });
    for isa in [Isa::Avx2Vnni, Isa::Avx512] {
        let plain_avx2 = isa.supported() && !isa.vnni256() && !isa.vnni512();
        assert_eq!(int8_weight_bits(isa), if plain_avx2 { 7 } else { 8 }, "{isa}");
    }
    let w = pseudo(64 * 32, 4);
    assert_eq!(PackedMatrix::pack_for(Isa::Portable, &w, 64, 32, Precision::Int8).int8_bits(), 8);
    assert_eq!(PackedMatrix::pack_for(Isa::Avx2, &w, 64, 32, Precision::Int8).int8_bits(), int8_weight_bits(Isa::Avx2));
}

#[test]
fn int8_handles_zero_rows_and_extreme_values() {
    let (m, n, k) = (3, 5, 8);
    let mut a = vec![0f32; m * k];
    a[k..2 * k].copy_from_slice(&[1e30, -1e30, 3.0, 0.0, -0.0, 1e-30, 2.0, -2.0]);
    a[2 * k] = f32::NAN;
    let w = pseudo(n * k, 9);
    let packed = PackedMatrix::pack(&w, n, k, Precision::Int8);
    for isa in isa::available() {
        let mut out = vec![f32::NAN; m * n];
        packed.matmul_on(isa, &a, m, None, None, &mut out);
        assert!(out[..n].iter().all(|&v| v == 0.0), "{isa}: a zero row gives zeros");
        assert!(out[n..2 * n].iter().all(|v| v.is_finite()), "{isa}: huge values stay finite");
    }
}

#[test]
fn the_fused_activation_runs_on_every_tile() {
    let (m, n, k) = (14, 40, 9);
    let (a, w) = (pseudo(m * k, 4), pseudo(n * k, 5));
    for isa in isa::available() {
        for p in [Precision::F32, Precision::Bf16, Precision::Int8] {
            let packed = PackedMatrix::pack(&w, n, k, p);
            let (mut plain, mut fused) = (vec![0f32; m * n], vec![0f32; m * n]);
            packed.matmul_on(isa, &a, m, None, None, &mut plain);
            packed.matmul_on(isa, &a, m, None, Some(crate::models::kernels::math::relu), &mut fused);
            let want: Vec<f32> = plain.iter().map(|v| v.max(0.0)).collect();
            assert_eq!(fused, want, "{isa} {p:?}");
        }
    }
}

#[test]
fn bf16_rounds_to_nearest_even() {
    assert_eq!(f32_to_bf16(1.0), 0x3f80);
    assert_eq!(bf16_to_f32(f32_to_bf16(1.0 + 1.0 / 256.0)), 1.0);
    assert_eq!(bf16_to_f32(f32_to_bf16(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
    assert!(bf16_to_f32(f32_to_bf16(f32::NAN)).is_nan());
}

/// `matmul_new` writes every value of its output (which is not zeroed first): it equals the product written over
/// a buffer of NaN, whose every value must be overwritten too.
#[test]
fn matmul_new_writes_every_value() {
    for (m, n, k) in SHAPES {
        let (a, w, bias) = (pseudo(m * k, 1), pseudo(n * k, 2), pseudo(n, 3));
        for precision in [Precision::F32, Precision::Bf16, Precision::Int8] {
            let packed = PackedMatrix::pack(&w, n, k, precision);
            let mut over_nan = vec![f32::NAN; m * n];
            packed.matmul(&a, m, Some(&bias), &mut over_nan);
            let new = packed.matmul_new(&a, m, Some(&bias), None);
            assert!(over_nan.iter().all(|v| v.is_finite()), "{precision:?} {m}x{n}x{k}: a value left unwritten");
            assert_eq!(new, over_nan, "{precision:?} {m}x{n}x{k}");
        }
    }
}

/// `matmul_fold` hands every value of the product to the fold exactly once, equal bit for bit to `matmul`'s,
/// in chunks of consecutive columns that come in column order for each row.
#[test]
fn matmul_fold_sees_every_value_once_in_column_order() {
    let shapes = SHAPES.iter().copied().chain([(29, 600, 64), (130, 1000, 20), (200, 257, 9)]);
    for isa in isa::available() {
        for (m, n, k) in shapes.clone() {
            let (a, w, bias) = (pseudo(m * k, 1), pseudo(n * k, 2), pseudo(n, 3));
            for precision in [Precision::F32, Precision::Bf16, Precision::Int8] {
                let packed = PackedMatrix::pack(&w, n, k, precision);
                let mut want = vec![0f32; m * n];
                packed.matmul_on(isa, &a, m, Some(&bias), None, &mut want);
                let parts = packed.matmul_fold_on(
                    isa,
                    &a,
                    m,
                    Some(&bias),
                    Vec::new,
                    |seen: &mut Vec<(usize, f32)>, row, col0, values| {
                        assert!(values.len() <= FOLD_COLUMNS && col0 + values.len() <= n, "{isa} {precision:?}: chunk");
                        seen.extend(values.iter().enumerate().map(|(j, &v)| (row * n + col0 + j, v)));
                    },
                );
                let mut got = vec![f32::NAN; m * n];
                let mut next_col = vec![0usize; m];
                for (row0, states) in parts {
                    for (r, seen) in states.into_iter().enumerate() {
                        for (at, v) in seen {
                            assert_eq!(
                                at,
                                (row0 + r) * n + next_col[row0 + r],
                                "{isa} {precision:?} {m}x{n}x{k}: order"
                            );
                            next_col[row0 + r] += 1;
                            got[at] = v;
                        }
                    }
                }
                assert!(next_col.iter().all(|&c| c == n), "{isa} {precision:?} {m}x{n}x{k}: every column once");
                assert_eq!(got, want, "{isa} {precision:?} {m}x{n}x{k}");
            }
        }
    }
}

/// The tasks of a plan cover every (row panel, column panel) pair once, in row blocks of equal size (within one
/// panel); weights streamed from memory get fewer, larger row blocks.
#[test]
fn a_plan_covers_every_tile_once_in_balanced_row_blocks() {
    // (rows, columns, bytes of one packed activation panel, streamed, row blocks expected)
    let f32_panel = |k: usize| MR * k * 4;
    let cases = [
        (128, 512, f32_panel(512), false, 1),
        (128, 2048, f32_panel(768), false, 2), // 11 panels of 36 KiB: 5 + 6, not 10 + 1
        (128, 512, f32_panel(2048), false, 3),
        (128, 512, f32_panel(2048), true, 1),
        (128, 768, f32_panel(768), true, 1),
        (1280, 512, f32_panel(512), false, 7),
        (1, 54796, f32_panel(512), true, 1),
        (700, 100, f32_panel(2048), true, 5),
    ];
    for (m, n, panel_bytes, stream, blocks) in cases {
        let plan = Plan::new(m, n, panel_bytes, stream);
        let (m_panels, n_panels) = (m.div_ceil(MR), n.div_ceil(NR));
        let mut seen = vec![0u32; m_panels * n_panels];
        let mut sizes = std::collections::BTreeSet::new();
        for t in 0..plan.tasks() {
            let (panels, rows) = plan.tile(t);
            sizes.insert(rows.len());
            for q in rows {
                for p in panels.clone() {
                    seen[q * n_panels + p] += 1;
                }
            }
        }
        let case = (m, n, panel_bytes, stream);
        assert!(seen.iter().all(|&c| c == 1), "{case:?}: every tile once");
        assert_eq!(plan.m_blocks, blocks, "{case:?}: row blocks");
        assert!(sizes.last().unwrap() - sizes.first().unwrap() <= 1, "{case:?}: block sizes {sizes:?}");
    }
}

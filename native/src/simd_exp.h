// e^x for 16 floats, shared by the AVX-512 kernels (geglu.cpp, groupnorm.cpp). Include it only where the x86-64
// AVX-512 code is compiled; the function carries its own target attribute, so callers built for a superset inline it.
#pragma once
#include <immintrin.h>

namespace ld {
// exp(t) to ~1 ulp: t = n·ln2 + r, |r| ≤ ln2/2, Cephes' degree-6 polynomial for e^r, scaled by 2^n with scalef (which
// overflows to inf and underflows gradually to 0 on its own). NaN passes through.
__attribute__((target("avx512f"))) inline __m512 exp512(__m512 t) {
  t = _mm512_max_ps(_mm512_set1_ps(-104.0f), t);
  t = _mm512_min_ps(_mm512_set1_ps(89.0f), t);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(t, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), t);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}
}  // namespace ld

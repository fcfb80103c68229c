//! Deterministic Gaussian noise for the model's tests (xorshift64 + Box-Muller): the same
//! numbers on every machine, no dependency.

/// A generator of standard normal draws from `seed` (0 is treated as 1).
pub(crate) fn gaussian(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed.max(1);
    move || {
        let mut uniform = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let (a, b) = (uniform().max(1e-12), uniform());
        (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    }
}

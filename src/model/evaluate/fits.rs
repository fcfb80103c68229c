//! Point fits shared between candidates: the quantile LSTM under two interval methods trains once
//! per refit.

use super::super::baselines::{FitReport, Forecaster};
use super::super::recipe::{PointRecipe, Recipe};
use super::super::ModelError;

/// The point models fitted so far, per point recipe and refit: candidates that differ only in
/// their interval method (`lstm_quantile` and `lstm_quantile_mix`) share one fit per refit, since
/// a point fit never sees the scale. A recipe whose fit failed is not kept: the next candidate
/// with it fails on its own.
#[derive(Default)]
pub(super) struct PointFits {
    fits: Vec<(PointRecipe, Vec<FittedPoint>)>,
}

/// A point model fitted at one refit, and what its fit reported.
type FittedPoint = (Box<dyn Forecaster>, FitReport);

impl PointFits {
    /// The fit of `recipe` at refit `k`, fitted now by `fit` unless an earlier candidate did.
    pub(super) fn get_or_fit(
        &mut self,
        recipe: &Recipe,
        k: usize,
        fit: impl FnOnce(&mut dyn Forecaster) -> Result<FitReport, ModelError>,
    ) -> Result<(&dyn Forecaster, &FitReport), ModelError> {
        let slot = match self.fits.iter().position(|(r, _)| *r == recipe.point) {
            Some(i) => i,
            None => {
                self.fits.push((recipe.point.clone(), Vec::new()));
                self.fits.len() - 1
            }
        };
        let refits = &mut self.fits[slot].1;
        if refits.len() == k {
            let mut point = recipe.build(None);
            let report = fit(&mut *point)?;
            refits.push((point, report));
        }
        let (point, report) = refits.get(k).ok_or_else(|| {
            ModelError::Numeric(format!("refit {k} of {} out of order", recipe.name()))
        })?;
        Ok((&**point, report))
    }

    pub(super) fn at(&self, recipe: &Recipe, k: usize) -> Option<&dyn Forecaster> {
        self.fits
            .iter()
            .find(|(r, _)| *r == recipe.point)
            .and_then(|(_, refits)| refits.get(k))
            .map(|(point, _)| &**point)
    }
}

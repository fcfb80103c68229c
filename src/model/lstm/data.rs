//! The network's inputs: a window of `lookback` standardized feature rows, each followed by the
//! coin's one-hot slot. Training uploads every coin's standardized rows to the device once and
//! gathers each batch there by index (the permutation is drawn on the device too), so a GPU does
//! not wait on host-side assembly. Inference, a few windows at a
//! time, assembles them on the host.

use tch::{Device, Kind, Tensor};

use crate::model::dataset::CoinSeries;

/// Standardization from the training origins, and where each coin's one-hot slot is.
pub(super) struct InputScaling<'a> {
    pub lookback: usize,
    pub mean: &'a [f64],
    pub std: &'a [f64],
    /// Slots of the one-hot part (the model's coin count).
    pub coins: usize,
    /// Series index -> one-hot slot.
    pub coin_slot: Vec<usize>,
}

impl InputScaling<'_> {
    /// Inputs of samples (series index, origin) as a [n, lookback, features + coins] tensor on
    /// the host.
    pub fn host_inputs(&self, samples: &[(usize, usize)], series: &[&CoinSeries]) -> Tensor {
        let (l, f) = (self.lookback, self.mean.len());
        let d = f + self.coins;
        let mut data = vec![0f32; samples.len() * l * d];
        for (b, &(coin, i)) in samples.iter().enumerate() {
            let s = series[coin];
            for (t, j) in (i + 1 - l..=i).enumerate() {
                let base = (b * l + t) * d;
                for (k, v) in s.row(j).iter().enumerate() {
                    data[base + k] = ((v - self.mean[k]) / self.std[k]) as f32;
                }
                data[base + f + self.coin_slot[coin]] = 1.0;
            }
        }
        Tensor::from_slice(&data).view([samples.len() as i64, l as i64, d as i64])
    }
}

/// Every coin's standardized feature rows, resident on the training device.
pub(super) struct DeviceRows {
    /// [every hour of every coin, features].
    rows: Tensor,
    /// The row of each series' first hour.
    offsets: Vec<i64>,
    /// [coins, coins]: one-hot rows.
    eye: Tensor,
    /// [1, lookback]: 0..lookback, added to a window's first row.
    steps: Tensor,
    lookback: i64,
    coins: i64,
    device: Device,
}

/// Samples (coin, origin) with their targets, as index tensors on the device.
pub(super) struct DeviceSamples {
    first_row: Tensor,
    coin: Tensor,
    targets: Tensor,
    pub len: i64,
}

impl DeviceRows {
    /// One upload of every series' rows, standardized with `scaling`.
    pub fn upload(series: &[CoinSeries], scaling: &InputScaling<'_>, device: Device) -> Self {
        let f = scaling.mean.len();
        let total: usize = series.iter().map(CoinSeries::len).sum();
        let mut data = Vec::with_capacity(total * f);
        let mut offsets = Vec::with_capacity(series.len());
        for s in series {
            offsets.push((data.len() / f.max(1)) as i64);
            for i in 0..s.len() {
                data.extend(
                    s.row(i)
                        .iter()
                        .enumerate()
                        .map(|(k, v)| ((v - scaling.mean[k]) / scaling.std[k]) as f32),
                );
            }
        }
        let coins = scaling.coins as i64;
        let lookback = scaling.lookback as i64;
        Self {
            rows: Tensor::from_slice(&data)
                .view([total as i64, f as i64])
                .to_device(device),
            offsets,
            eye: Tensor::eye(coins, (Kind::Float, device)),
            steps: Tensor::arange(lookback, (Kind::Int64, device)).view([1, lookback]),
            lookback,
            coins,
            device,
        }
    }

    /// Samples (series index, origin) and their targets (`horizon` per sample), uploaded.
    pub fn samples(
        &self,
        samples: &[(usize, usize)],
        targets: &[f32],
        horizon: usize,
    ) -> DeviceSamples {
        let first: Vec<i64> = samples
            .iter()
            .map(|&(c, i)| self.offsets[c] + i as i64 + 1 - self.lookback)
            .collect();
        let coin: Vec<i64> = samples.iter().map(|&(c, _)| c as i64).collect();
        let n = samples.len() as i64;
        DeviceSamples {
            first_row: Tensor::from_slice(&first).to_device(self.device),
            coin: Tensor::from_slice(&coin).to_device(self.device),
            targets: Tensor::from_slice(targets)
                .view([n, horizon as i64])
                .to_device(self.device),
            len: n,
        }
    }

    /// The inputs [b, lookback, features + coins] and targets [b, horizon] of the samples at
    /// positions `index` (an int64 tensor on the device).
    pub fn batch(&self, set: &DeviceSamples, index: &Tensor) -> (Tensor, Tensor) {
        let b = index.size()[0];
        let first = set.first_row.index_select(0, index).view([b, 1]);
        let rows = (first + &self.steps).view([-1]);
        let x = self
            .rows
            .index_select(0, &rows)
            .view([b, self.lookback, -1]);
        let onehot = self
            .eye
            .index_select(0, &set.coin.index_select(0, index))
            .view([b, 1, self.coins])
            .expand([b, self.lookback, self.coins], false);
        (
            Tensor::cat(&[x, onehot], 2),
            set.targets.index_select(0, index),
        )
    }

    /// Positions 0..n of a sample set, in order, in chunks of `size` (for evaluation passes).
    pub fn chunks(&self, set: &DeviceSamples, size: i64) -> Vec<Tensor> {
        (0..set.len)
            .step_by(size.max(1) as usize)
            .map(|start| {
                Tensor::arange_start(
                    start,
                    (start + size).min(set.len),
                    (Kind::Int64, self.device),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch gathered on the device is the same tensor the host assembles.
    #[test]
    fn device_batches_equal_host_assembly() {
        let make = |name: &str, offset: f64| {
            let n = 40;
            let price: Vec<f64> = (0..n).map(|i| 100.0 + offset + f64::from(i)).collect();
            let feature: Vec<f64> = (0..n * 2).map(|k| offset + f64::from(k) * 0.5).collect();
            CoinSeries::from_arrays(name, 0, price, feature, vec!["a".into(), "b".into()])
        };
        let series = vec![make("x", 0.0), make("y", 7.0)];
        let (mean, std) = (vec![1.0, 2.0], vec![2.0, 4.0]);
        let scaling = InputScaling {
            lookback: 5,
            mean: &mean,
            std: &std,
            coins: 2,
            coin_slot: vec![0, 1],
        };
        let samples = vec![(0, 4), (1, 10), (0, 39), (1, 20)];
        let rows = DeviceRows::upload(&series, &scaling, Device::Cpu);
        let set = rows.samples(&samples, &[0.0; 4], 1);
        let index = Tensor::from_slice(&[2i64, 0, 3]);
        let (x, _) = rows.batch(&set, &index);
        let refs: Vec<&CoinSeries> = series.iter().collect();
        let host = scaling.host_inputs(&[samples[2], samples[0], samples[3]], &refs);
        assert_eq!(x.size(), host.size());
        assert!(x.allclose(&host, 1e-6, 1e-6, false));
        assert_eq!(rows.chunks(&set, 3).len(), 2);
    }
}

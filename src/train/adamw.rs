//! AdamW (Loshchilov & Hutter 2019, https://arxiv.org/abs/1711.05101) over candle variables,
//! with its moments saved and loaded so a resumed run continues exactly. candle-nn's `AdamW`
//! keeps its moments private.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Result, Tensor, Var};

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

pub struct AdamW {
    /// (name, variable, first moment, second moment), in name order.
    vars: Vec<(String, Var, Tensor, Tensor)>,
    step: usize,
    lr: f64,
    weight_decay: f64,
}

impl AdamW {
    pub fn new(vars: Vec<(String, Var)>, lr: f64, weight_decay: f64) -> Result<Self> {
        let vars = vars
            .into_iter()
            .map(|(n, v)| {
                let z = v.zeros_like()?;
                Ok((n, v, z.clone(), z))
            })
            .collect::<Result<_>>()?;
        Ok(Self { vars, step: 0, lr, weight_decay })
    }

    /// One step down the gradient of `loss`.
    pub fn step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step += 1;
        let t = self.step as i32;
        let (c1, c2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
        for (_, var, m, v) in &mut self.vars {
            // Gradients come out of the graph carrying its history: detached, the moments stay
            // plain tensors and each step's graph is freed.
            let Some(g) = grads.get(var.as_tensor()).map(|g| g.detach()) else { continue };
            let g = &g;
            *m = ((&*m * BETA1)? + (g * (1.0 - BETA1))?)?.detach();
            *v = ((&*v * BETA2)? + (g.sqr()? * (1.0 - BETA2))?)?.detach();
            let update = ((&*m / c1)? / ((&*v / c2)?.sqrt()? + EPS)?)?;
            let w = var.as_tensor();
            let next = ((w * (1.0 - self.lr * self.weight_decay))? - (update * self.lr)?)?;
            var.set(&next.detach())?;
        }
        Ok(())
    }

    /// Weights, moments and the step count, to `path` (safetensors), whole or not at all.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut out: HashMap<String, Tensor> = HashMap::new();
        for (name, var, m, v) in &self.vars {
            out.insert(format!("w.{name}"), var.as_tensor().detach());
            out.insert(format!("m.{name}"), m.clone());
            out.insert(format!("v.{name}"), v.clone());
        }
        out.insert("step".into(), Tensor::new(&[self.step as u32], &candle_core::Device::Cpu)?);
        let tmp = path.with_extension("partial");
        candle_core::safetensors::save(&out, &tmp)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Restores what `save` wrote.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let mut saved = candle_core::safetensors::load(path, &candle_core::Device::Cpu)?;
        let mut take = |k: String| saved.remove(&k).ok_or_else(|| candle_core::Error::Msg(format!("{k} missing")));
        for (name, var, m, v) in &mut self.vars {
            var.set(&take(format!("w.{name}"))?)?;
            *m = take(format!("m.{name}"))?;
            *v = take(format!("v.{name}"))?;
        }
        self.step = take("step".into())?.to_vec1::<u32>()?[0] as usize;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimises_a_quadratic_and_resumes_where_it_stopped() {
        let d = candle_core::Device::Cpu;
        let run = |steps: usize, from: Option<&Path>, to: Option<&Path>| {
            let x = Var::new(&[3.0f32, -2.0], &d).unwrap();
            let mut opt = AdamW::new(vec![("x".into(), x.clone())], 0.1, 0.0).unwrap();
            if let Some(p) = from {
                opt.load(p).unwrap();
            }
            for _ in 0..steps {
                let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
                opt.step(&loss).unwrap();
            }
            if let Some(p) = to {
                opt.save(p).unwrap();
            }
            x.as_tensor().to_vec1::<f32>().unwrap()
        };
        let straight = run(60, None, None);
        assert!(straight.iter().all(|v| v.abs() < 0.5), "{straight:?}");
        let dir = std::env::temp_dir().join(format!("adamw-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ck = dir.join("ck.safetensors");
        run(25, None, Some(&ck));
        let resumed = run(35, Some(&ck), None);
        assert_eq!(straight, resumed);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

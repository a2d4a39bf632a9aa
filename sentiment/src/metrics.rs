//! Evaluation: confusion matrix, accuracy, per-class precision/recall/F1 and
//! macro F1 (the number that matters with two-thirds neutral data).

use crate::model::Label;
use std::fmt;

/// `m[true][predicted]` counts, classes in [`Label::index`] order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Confusion {
    /// Counts, rows = truth, columns = prediction.
    pub m: [[u64; 3]; 3],
}

impl Confusion {
    /// Adds one prediction.
    pub fn add(&mut self, truth: Label, pred: Label) {
        self.m[truth.index()][pred.index()] += 1;
    }

    /// Number of examples.
    pub fn total(&self) -> u64 {
        self.m.iter().flatten().sum()
    }

    /// Fraction correct (0 when empty).
    pub fn accuracy(&self) -> f64 {
        let t = self.total();
        if t == 0 {
            return 0.0;
        }
        (0..3).map(|i| self.m[i][i]).sum::<u64>() as f64 / t as f64
    }

    /// (precision, recall, F1) of one class; 0 where undefined.
    pub fn prf(&self, l: Label) -> (f64, f64, f64) {
        let i = l.index();
        let tp = self.m[i][i] as f64;
        let pred: u64 = (0..3).map(|r| self.m[r][i]).sum();
        let truth: u64 = self.m[i].iter().sum();
        let p = if pred > 0 { tp / pred as f64 } else { 0.0 };
        let r = if truth > 0 { tp / truth as f64 } else { 0.0 };
        let f = if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        };
        (p, r, f)
    }

    /// Unweighted mean of the three per-class F1 scores.
    pub fn macro_f1(&self) -> f64 {
        Label::ALL.iter().map(|&l| self.prf(l).2).sum::<f64>() / 3.0
    }
}

impl fmt::Display for Confusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "accuracy {:.4}  macro-F1 {:.4}  (n = {})",
            self.accuracy(),
            self.macro_f1(),
            self.total()
        )?;
        writeln!(f, "  class     precision  recall  F1")?;
        for l in Label::ALL {
            let (p, r, f1) = self.prf(l);
            writeln!(f, "  {:<9} {:>9.4}  {:>6.4}  {:.4}", l.as_str(), p, r, f1)?;
        }
        writeln!(
            f,
            "  confusion (rows = truth, cols = predicted: neg neu pos)"
        )?;
        for l in Label::ALL {
            let r = self.m[l.index()];
            writeln!(f, "  {:<9} {:>5} {:>5} {:>5}", l.as_str(), r[0], r[1], r[2])?;
        }
        Ok(())
    }
}

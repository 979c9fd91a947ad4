//! The few statistics the report needs: medians of repeated runs, ratios to the baseline
//! allocator and geometric means of those ratios.

/// The median of the values; the mean of the middle two for an even count.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

/// `value / baseline`, when both are measurements a ratio can be taken of.
pub fn ratio(value: f64, baseline: f64) -> Option<f64> {
    (value.is_finite() && baseline.is_finite() && value >= 0.0 && baseline > 0.0)
        .then(|| value / baseline)
}

/// The geometric mean, the right average of ratios: a workload twice as fast and one twice
/// as slow average to 1. Ratios of zero or below have no logarithm and make it undefined.
pub fn geometric_mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return None;
    }
    let log_sum: f64 = values.iter().map(|v| v.ln()).sum();
    Some((log_sum / values.len() as f64).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn median_of_odd_count_is_the_middle_value() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[5.0]), Some(5.0));
    }

    #[test]
    fn median_of_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn median_ignores_an_outlier() {
        assert_eq!(median(&[1.0, 100.0, 1.2]), Some(1.2));
    }

    #[test]
    fn median_of_nothing_or_nan_is_none() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn ratio_divides_by_the_baseline() {
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(0.0, 2.0), Some(0.0));
    }

    #[test]
    fn ratio_to_a_zero_or_invalid_baseline_is_none() {
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(1.0, -1.0), None);
        assert_eq!(ratio(f64::INFINITY, 1.0), None);
        assert_eq!(ratio(-1.0, 1.0), None);
    }

    #[test]
    fn geometric_mean_of_reciprocals_is_one() {
        assert!(close(geometric_mean(&[2.0, 0.5]).unwrap(), 1.0));
        assert!(close(geometric_mean(&[4.0, 0.25, 1.0]).unwrap(), 1.0));
    }

    #[test]
    fn geometric_mean_matches_the_nth_root_of_the_product() {
        assert!(close(
            geometric_mean(&[1.0, 8.0, 27.0]).unwrap(),
            216f64.cbrt()
        ));
        assert!(close(geometric_mean(&[3.0]).unwrap(), 3.0));
    }

    #[test]
    fn geometric_mean_is_undefined_for_empty_or_non_positive() {
        assert_eq!(geometric_mean(&[]), None);
        assert_eq!(geometric_mean(&[1.0, 0.0]), None);
        assert_eq!(geometric_mean(&[1.0, -2.0]), None);
    }
}

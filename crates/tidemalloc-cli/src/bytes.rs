//! Byte counts as a person reads them (`30 KiB`, `1.5 MiB`). Formatting never allocates, so
//! the demonstration can print between its steps without touching the heap it shows.

use core::fmt;

const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];

/// A size in bytes: whole units print without decimals, the rest with one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut unit = 0;
        let mut scale = 1u64;
        while unit + 1 < UNITS.len() && self.0 >= scale * 1024 {
            unit += 1;
            scale *= 1024;
        }
        if self.0.is_multiple_of(scale) {
            write!(f, "{} {}", self.0 / scale, UNITS[unit])
        } else {
            write!(f, "{:.1} {}", self.0 as f64 / scale as f64, UNITS[unit])
        }
    }
}

/// A signed change in bytes, always with its sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delta(pub i64);

impl fmt::Display for Delta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { '-' } else { '+' };
        write!(f, "{sign}{}", Bytes(self.0.unsigned_abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_units_have_no_decimals() {
        assert_eq!(Bytes(0).to_string(), "0 B");
        assert_eq!(Bytes(1023).to_string(), "1023 B");
        assert_eq!(Bytes(30 * 1024).to_string(), "30 KiB");
        assert_eq!(Bytes(132 * 1024).to_string(), "132 KiB");
        assert_eq!(Bytes(3 << 30).to_string(), "3 GiB");
    }

    #[test]
    fn fractions_keep_one_decimal() {
        assert_eq!(Bytes(30 * 1024 + 16).to_string(), "30.0 KiB");
        assert_eq!(Bytes(1536 * 1024).to_string(), "1.5 MiB");
    }

    #[test]
    fn deltas_carry_their_sign() {
        assert_eq!(Delta(135_168).to_string(), "+132 KiB");
        assert_eq!(Delta(-4096).to_string(), "-4 KiB");
        assert_eq!(Delta(0).to_string(), "+0 B");
    }
}

//! UFFDIO_API feature bits, by name. Cases name features; the kernel answers with bits.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A userfaultfd feature (`UFFD_FEATURE_*`), named in lower case in cases.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    PagefaultFlagWp,
    EventFork,
    EventRemap,
    EventRemove,
    MissingHugetlbfs,
    MissingShmem,
    EventUnmap,
    Sigbus,
    ThreadId,
    MinorHugetlbfs,
    MinorShmem,
    ExactAddress,
    WpHugetlbfsShmem,
    WpUnpopulated,
    Poison,
    WpAsync,
    Move,
}

impl Feature {
    pub const ALL: [Feature; 17] = [
        Feature::PagefaultFlagWp,
        Feature::EventFork,
        Feature::EventRemap,
        Feature::EventRemove,
        Feature::MissingHugetlbfs,
        Feature::MissingShmem,
        Feature::EventUnmap,
        Feature::Sigbus,
        Feature::ThreadId,
        Feature::MinorHugetlbfs,
        Feature::MinorShmem,
        Feature::ExactAddress,
        Feature::WpHugetlbfsShmem,
        Feature::WpUnpopulated,
        Feature::Poison,
        Feature::WpAsync,
        Feature::Move,
    ];

    /// The feature's bit in `uffdio_api.features` (its position in [`Feature::ALL`]).
    pub fn bit(self) -> u64 {
        1 << (self as u32)
    }

    /// The kernel's name, e.g. `UFFD_FEATURE_WP_ASYNC`.
    pub fn kernel_name(self) -> String {
        let yaml = serde_json::to_value(self).expect("feature serializes");
        format!(
            "UFFD_FEATURE_{}",
            yaml.as_str().unwrap_or_default().to_uppercase()
        )
    }

    /// The lower-case name used in cases.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    pub fn from_bits(bits: u64) -> Vec<Feature> {
        Feature::ALL
            .into_iter()
            .filter(|f| bits & f.bit() != 0)
            .collect()
    }
}

/// Features as a bit mask.
pub fn mask(features: &[Feature]) -> u64 {
    features.iter().fold(0, |m, f| m | f.bit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_follow_the_uapi_header() {
        assert_eq!(Feature::PagefaultFlagWp.bit(), 1 << 0);
        assert_eq!(Feature::EventUnmap.bit(), 1 << 6);
        assert_eq!(Feature::WpHugetlbfsShmem.bit(), 1 << 12);
        assert_eq!(Feature::WpAsync.bit(), 1 << 15);
        assert_eq!(Feature::Move.bit(), 1 << 16);
        assert_eq!(Feature::WpAsync.kernel_name(), "UFFD_FEATURE_WP_ASYNC");
    }
}

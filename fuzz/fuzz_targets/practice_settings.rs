//! Practice settings (issue 14.1): any bytes that parse as JSON either become a
//! `PracticeSettings` whose stored form parses back to itself, or are refused with one of its fixed
//! messages (nothing that was sent is echoed). Never a panic.
#![no_main]

use domain::practice::PracticeSettings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    match PracticeSettings::parse(&v) {
        Ok(s) => assert_eq!(PracticeSettings::parse(&s.to_json()), Ok(s)),
        Err(e) => assert!(
            [
                "settings: must be a JSON object",
                "settings: is too large (4 KiB at most)",
                "settings: has an unknown key (known keys: clinical_scope)",
                "settings.clinical_scope: must be \"care_team\" or \"practice\"",
                "settings: does not match the settings schema",
            ]
            .contains(&e.to_string().as_str()),
            "a refusal says only which rule was broken"
        ),
    }
});

//! req: EGR-01, EGR-02 — a `String` cannot become an SMS body, an email subject or body, a
//! template slot or a payment description: these programs must not compile.

#[test]
fn free_text_cannot_reach_an_outbound_payload() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}

//! `chartroom-bench outbound-scan`: the scanner's cost per message against rendering alone.
//!
//! A practice of N synthetic clients (the generator's names, phones and emails, plus a street
//! address each); every template of the catalogue rendered with fresh links, alternating
//! rounds of render-only and render + scan (the SMS body, the email text and the SMS body as
//! a carrier's JSON request), in one process.

use std::time::{Duration, Instant};

use outbound::{
    AppointmentTime, KnownClient, LinkOrigin, LinkToken, Message, NoticeDate, PracticeName,
    PracticePhone, SampleSlots, Scanner, SubprocessorName,
};

fn messages(slots: &SampleSlots) -> Vec<Message> {
    slots.every_template(LinkToken::generate)
}

/// Runs the benchmark and prints the report.
pub fn outbound_scan(clients: usize, per_round: usize, rounds: usize) -> anyhow::Result<()> {
    let origin = LinkOrigin::parse("https://book.harbour.example.test")?;
    let practice = PracticeName::new("Harbour Dental")?;
    let phone = PracticePhone::new("+15550100199")?;
    let slots = SampleSlots {
        practice: practice.clone(),
        origin: origin.clone(),
        phone: phone.clone(),
        time: AppointmentTime::new(
            chrono::NaiveDate::from_ymd_opt(2026, 12, 8)
                .and_then(|d| d.and_hms_opt(9, 30, 0))
                .unwrap_or_default(),
        ),
        vendor: SubprocessorName::from_registry("Telnyx")?,
        effective: NoticeDate::new(chrono::NaiveDate::from_ymd_opt(2027, 1, 6).unwrap_or_default()),
    };
    let mut generator = domain::synthetic::Generator::new(19);
    let known: Vec<KnownClient> = (0..clients)
        .map(|i| {
            let p = generator.patient();
            KnownClient {
                given: p.given_name,
                family: p.family_name,
                phones: vec![p.phone],
                emails: vec![p.email],
                address_lines: vec![format!("{} Larchmont Crescent", 10 + i)],
            }
        })
        .collect();
    let built = Instant::now();
    let scanner = Scanner::new(
        &known,
        [origin.host().to_owned()],
        std::slice::from_ref(&phone),
        &["front@harbour.example.test".to_owned()],
        Some(&practice),
    )?;
    let build_ms = built.elapsed().as_secs_f64() * 1e3;
    let mut render_best = Duration::MAX;
    let mut scan_best = Duration::MAX;
    let mut refused = 0usize;
    for _ in 0..rounds {
        // Render only.
        let started = Instant::now();
        let mut bytes = 0usize;
        for i in 0..per_round {
            let msgs = messages(&slots);
            let r = msgs[i % msgs.len()].render();
            bytes += r.sms().as_str().len() + r.email().text().len();
        }
        render_best = render_best.min(started.elapsed());
        std::hint::black_box(bytes);
        // Render, then scan the SMS body, the email text and a carrier request.
        let started = Instant::now();
        for i in 0..per_round {
            let msgs = messages(&slots);
            let r = msgs[i % msgs.len()].render();
            let json = serde_json::to_vec(&serde_json::json!({
                "from": phone.as_str(), "to": "+15550100142", "text": r.sms().as_str()
            }))?;
            let ok = scanner.scan(r.sms().as_str().as_bytes(), None).is_ok()
                && scanner.scan(r.email().text().as_bytes(), None).is_ok()
                && scanner.scan(&json, Some("+15550100142")).is_ok();
            refused += usize::from(!ok);
        }
        scan_best = scan_best.min(started.elapsed());
    }
    #[allow(clippy::cast_precision_loss)]
    let per = |d: Duration| d.as_secs_f64() * 1e6 / per_round as f64;
    println!(
        "outbound scanner: {clients} known clients (built in {build_ms:.1} ms), {per_round} messages per round, best of {rounds} alternating rounds"
    );
    println!("render only:        {:>8.2} µs / message", per(render_best));
    println!(
        "render + 3 scans:   {:>8.2} µs / message ({:.1}× render alone; {:.0} messages/s on one core)",
        per(scan_best),
        per(scan_best) / per(render_best),
        1e6 / per(scan_best)
    );
    println!("refused: {refused} (must be 0: every template is clean)");
    anyhow::ensure!(refused == 0, "the scanner refused a clean template");
    Ok(())
}

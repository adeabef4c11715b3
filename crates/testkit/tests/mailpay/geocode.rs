//! `egress::geocode` against the Nominatim stand-in, behind the address gate.

use egress::geocode::{GeocodeConfig, GeocodeError, Geocoder, PracticeAddress};
use egress::outbound::{AddressGate, AddressRefusal, ClientAddress};
use serde_json::json;
use testkit::mailpay_standins::{Failure, NominatimStandIn};

fn config(base: &str) -> GeocodeConfig {
    GeocodeConfig {
        enabled: true,
        base_url: base.into(),
        ..GeocodeConfig::default()
    }
}

fn gate() -> AddressGate {
    let mut addresses: Vec<ClientAddress> = super::clients()
        .iter()
        .flat_map(|c| c.address_lines.iter())
        .map(|l| ClientAddress {
            line: l.clone(),
            postcode: None,
        })
        .collect();
    addresses.push(ClientAddress {
        line: "Apt 4, 77 Mill Road".into(),
        postcode: Some("B3H 1A1".into()),
    });
    AddressGate::new(&addresses)
}

fn practice_address(street: &str, postcode: Option<&str>) -> PracticeAddress {
    PracticeAddress {
        street: street.into(),
        city: "Halifax".into(),
        postcode: postcode.map(str::to_owned),
        country: Some("Canada".into()),
    }
}

#[tokio::test]
async fn a_practice_address_is_geocoded_with_a_structured_query() {
    let standin = NominatimStandIn::start().await;
    let geo = Geocoder::new(&config(&standin.url())).unwrap();
    let points = geo
        .geocode(
            &gate(),
            &practice_address("1 Harbour View", Some("B3J 2K9")),
        )
        .await
        .unwrap();
    assert_eq!(points.len(), 1);
    assert!((points[0].lat - 44.6488).abs() < 1e-9);
    assert!((points[0].lon + 63.5752).abs() < 1e-9);
    let r = &standin.recorded()[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/search");
    let q = r.query_pairs();
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("format"), Some("jsonv2"));
    assert_eq!(get("street"), Some("1 Harbour View"));
    assert_eq!(get("city"), Some("Halifax"));
    assert_eq!(get("postalcode"), Some("B3J 2K9"));
    assert_eq!(get("q"), None);
}

#[tokio::test]
async fn client_addresses_and_their_neighbourhood_never_leave() {
    let standin = NominatimStandIn::start().await;
    let geo = Geocoder::new(&config(&standin.url())).unwrap();
    let g = gate();
    for (street, postcode, want) in [
        // A client's own address, spelled differently.
        ("10 Larchmont Crescent", None, AddressRefusal::ClientAddress),
        ("10 larchmont cres.", None, AddressRefusal::ClientAddress),
        ("Unit 3, 77 Mill Rd", None, AddressRefusal::ClientAddress),
        // Neighbours and the street itself.
        (
            "12 Larchmont Crescent",
            None,
            AddressRefusal::NearClientAddress,
        ),
        ("81 Mill Road", None, AddressRefusal::NearClientAddress),
        (
            "Larchmont Crescent",
            None,
            AddressRefusal::NearClientAddress,
        ),
        // Same postcode and street, far along it.
        (
            "300 Mill Road",
            Some("b3h1a1"),
            AddressRefusal::NearClientAddress,
        ),
    ] {
        let e = geo
            .geocode(&g, &practice_address(street, postcode))
            .await
            .unwrap_err();
        assert_eq!(e, GeocodeError::ClientAddress(want), "{street}");
    }
    assert!(standin.recorded().is_empty(), "nothing was sent");
    // Far along the same street with another postcode, or another street: allowed.
    geo.geocode(&g, &practice_address("300 Mill Road", Some("B3K 5X5")))
        .await
        .unwrap();
    geo.geocode(&g, &practice_address("77 Mill Lane", None))
        .await
        .unwrap();
    assert_eq!(standin.recorded().len(), 2);
}

#[tokio::test]
async fn off_by_default_self_hosted_only_and_replies_capped() {
    assert_eq!(
        Geocoder::new(&GeocodeConfig::default())
            .map(|_| ())
            .unwrap_err(),
        GeocodeError::Disabled
    );
    assert_eq!(
        Geocoder::new(&config("https://nominatim.openstreetmap.org"))
            .map(|_| ())
            .unwrap_err(),
        GeocodeError::NotSelfHosted
    );
    let standin = NominatimStandIn::start().await;
    let geo = Geocoder::new(&config(&standin.url())).unwrap();
    let g = gate();
    let addr = practice_address("1 Harbour View", None);
    standin.script(Failure::Status(503));
    assert_eq!(geo.geocode(&g, &addr).await, Err(GeocodeError::Status(503)));
    standin.script(Failure::Malformed);
    assert_eq!(geo.geocode(&g, &addr).await, Err(GeocodeError::Malformed));
    standin.script(Failure::Oversized(100_000));
    assert_eq!(geo.geocode(&g, &addr).await, Err(GeocodeError::Malformed));
    standin.answer(json!(
        (0..50)
            .map(|i| json!({"lat": format!("44.{i}"), "lon": "-63.5"}))
            .collect::<Vec<_>>()
    ));
    assert_eq!(
        geo.geocode(&g, &addr).await.unwrap().len(),
        egress::geocode::MAX_RESULTS
    );
    standin.answer(json!([{"lat": "144.0", "lon": "0"}]));
    assert_eq!(geo.geocode(&g, &addr).await, Err(GeocodeError::Malformed));
    let mut bad = addr.clone();
    bad.street = "1 Harbour View\nX-Injected: 1".into();
    assert_eq!(geo.geocode(&g, &bad).await, Err(GeocodeError::BadQuery));
    bad.street = "x".repeat(201);
    assert_eq!(geo.geocode(&g, &bad).await, Err(GeocodeError::BadQuery));
}

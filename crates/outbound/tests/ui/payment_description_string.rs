use outbound::payment::{Amount, Charge, Currency, OpaqueRef};

fn main() {
    let _ = Charge {
        amount: Amount::new(5000, Currency::Usd).unwrap(),
        description: String::from("Deep cleaning, 4 quadrants"),
        reference: OpaqueRef::new(uuid::Uuid::nil()),
    };
}

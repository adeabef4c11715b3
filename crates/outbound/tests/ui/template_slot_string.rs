use outbound::{LinkOrigin, LinkPurpose, LinkToken, Message, OpaqueLink};

fn main() {
    let origin = LinkOrigin::parse("https://book.example.test").unwrap();
    let _ = Message::IntakeRequest {
        practice: String::from("Maren Quillfeather, allergy: penicillin"),
        link: OpaqueLink::new(&origin, LinkPurpose::Intake, &LinkToken::generate()),
    };
}

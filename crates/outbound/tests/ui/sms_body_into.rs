fn main() {
    let note = String::from("Root canal on 36 went well");
    let _body: outbound::SmsBody = note.into();
}

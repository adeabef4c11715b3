fn main() {
    let _ = outbound::EmailBody {
        subject: String::from("Your periodontitis results"),
        text: String::from("Pocket depths 6 mm"),
    };
}

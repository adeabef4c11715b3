//! One message of every template of the catalogue, in [`Message::TEMPLATES`] order, built
//! from the slot values a caller gives: the one list of "every template" that the templates
//! preview shows a practice and the scanner benchmark renders.

use crate::{
    AppointmentTime, LinkOrigin, LinkPurpose, LinkToken, Message, NoticeDate, OpaqueLink,
    PracticeName, PracticePhone, PublicPage, PublicPageLink, SubprocessorName,
};

/// The slot values every template is filled with.
#[derive(Debug, Clone)]
pub struct SampleSlots {
    /// The practice's name.
    pub practice: PracticeName,
    /// The public origin links are made on.
    pub origin: LinkOrigin,
    /// The practice phone of the two templates that carry one.
    pub phone: PracticePhone,
    /// The appointment time of the booking templates.
    pub time: AppointmentTime,
    /// The subprocessor named by the owners' notice.
    pub vendor: SubprocessorName,
    /// The date the notice names.
    pub effective: NoticeDate,
}

impl SampleSlots {
    /// One message of every template, each link made with a token from `token` (called once
    /// per link, in order).
    #[must_use]
    pub fn every_template(&self, mut token: impl FnMut() -> LinkToken) -> Vec<Message> {
        let mut link = |purpose| OpaqueLink::new(&self.origin, purpose, &token());
        let p = || self.practice.clone();
        let time = self.time;
        vec![
            Message::BookingConfirmed {
                practice: p(),
                time,
                link: link(LinkPurpose::Manage),
            },
            Message::BookingReminder {
                practice: p(),
                time,
                link: link(LinkPurpose::Manage),
            },
            Message::BookingRescheduled {
                practice: p(),
                time,
                link: link(LinkPurpose::Manage),
            },
            Message::BookingCancelled {
                practice: p(),
                time,
                phone: self.phone.clone(),
            },
            Message::IntakeRequest {
                practice: p(),
                link: link(LinkPurpose::Intake),
            },
            Message::WaitlistOffer {
                practice: p(),
                time,
                link: link(LinkPurpose::Offer),
            },
            Message::PaymentRequest {
                practice: p(),
                link: link(LinkPurpose::Pay),
            },
            Message::StopConfirmed { practice: p() },
            Message::StartConfirmed { practice: p() },
            Message::Help {
                practice: p(),
                phone: self.phone.clone(),
            },
            Message::SubprocessorChange {
                practice: p(),
                vendor: self.vendor,
                effective: self.effective,
                link: PublicPageLink::new(&self.origin, PublicPage::Subprocessors),
            },
            Message::WaitlistJoined {
                practice: p(),
                link: link(LinkPurpose::Waitlist),
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_once_in_catalogue_order() {
        let slots = SampleSlots {
            practice: PracticeName::new("Harbour Dental").unwrap(),
            origin: LinkOrigin::parse("https://book.harbour.test").unwrap(),
            phone: PracticePhone::new("+15550100123").unwrap(),
            time: AppointmentTime::new(
                chrono::NaiveDate::from_ymd_opt(2030, 6, 4)
                    .unwrap()
                    .and_hms_opt(9, 30, 0)
                    .unwrap(),
            ),
            vendor: SubprocessorName::from_registry("Telnyx").unwrap(),
            effective: NoticeDate::new(chrono::NaiveDate::from_ymd_opt(2030, 7, 1).unwrap()),
        };
        let mut tokens = 0;
        let all = slots.every_template(|| {
            tokens += 1;
            LinkToken::generate()
        });
        assert_eq!(
            all.iter().map(Message::template).collect::<Vec<_>>(),
            Message::TEMPLATES.to_vec()
        );
        assert_eq!(tokens, 7, "one fresh token per link");
    }
}

//! Voice perio: one dictated clip, heard by a recognizer and decided on a perio session.
//!
//! The one pipeline every voice path runs (the perio page's dictation control and
//! `chartroom perio eval-voice`), so what is measured is what clinicians get:
//!
//! 1. the recognizer hears the clip with the perio prompt ([`perio::voice::prompt`]);
//! 2. [`perio::voice::decide`] snaps what it heard onto the engine's lexicon and scores it;
//! 3. a final that would chart without asking is heard a second time with the prompt
//!    without tooth numbers ([`perio::voice::check_prompt`]) and held when that reading
//!    disagrees ([`perio::voice::cross_check`]);
//! 4. a held final that a third reading can settle (held as unsure, ambiguous or in
//!    disagreement, with a reading that would chart) is heard a third time with a prompt whose
//!    tooth numbers none of its readings says ([`perio::voice::tie_prompt`]); it is charted
//!    only when that reading charts exactly one of its readings ([`perio::voice::tie_break`]).
//!
//! # Guarantees
//! - Pure apart from the recognizer calls: the session is only read (the caller applies the
//!   final, or holds it for confirmation); nothing is charted here.
//! - Every recognizer call is made through the [`Ear`] the caller gives, so the caller decides
//!   how each call is gated and recorded (one assistant turn per call on the perio page).
//! - A recognizer failure is an error, never a guessed final.

use bytes::Bytes;
use egress::EgressError;
use perio::Session;
use perio::voice::{
    Heard, Policy, VoiceFinal, check_prompt, cross_check, decide, needs_check, prompt, tie_break,
    tie_prompt,
};

/// A recognizer for dictated clips: hears one WAV clip with a prompt.
#[async_trait::async_trait]
pub trait Ear: Send + Sync {
    /// One recognizer call.
    async fn hear(&self, wav: &Bytes, prompt: &str) -> Result<Heard, EgressError>;
}

/// One reading of the clip: the prompt it was heard with and what was heard.
#[derive(Debug, Clone)]
pub struct Reading {
    /// The prompt sent.
    pub prompt: String,
    /// What the recognizer heard.
    pub heard: Heard,
}

/// A recognized clip: the decision and the readings it rests on (first is the main one).
#[derive(Debug, Clone)]
pub struct Recognized {
    /// The decided final (held or not), previewed on the session given.
    pub voice: VoiceFinal,
    /// Every reading made, in order.
    pub readings: Vec<Reading>,
}

/// Hears `wav` and decides it on `session` (which is only read).
///
/// # Errors
/// A recognizer call failed.
pub async fn recognize(
    ear: &dyn Ear,
    session: &Session,
    wav: &Bytes,
    policy: &Policy,
) -> Result<Recognized, EgressError> {
    let first_prompt = prompt();
    let first = ear.hear(wav, &first_prompt).await?;
    let mut voice = decide(session, &first, policy);
    let mut readings = vec![Reading {
        prompt: first_prompt,
        heard: first,
    }];
    if needs_check(&voice) {
        let second_prompt = check_prompt();
        let second = ear.hear(wav, &second_prompt).await?;
        voice = cross_check(session, voice, &second, policy);
        readings.push(Reading {
            prompt: second_prompt,
            heard: second,
        });
    }
    if let Some(third_prompt) = tie_prompt(session, &voice) {
        let third = ear.hear(wav, &third_prompt).await?;
        voice = tie_break(session, voice, &third, policy);
        readings.push(Reading {
            prompt: third_prompt,
            heard: third,
        });
    }
    Ok(Recognized { voice, readings })
}

/// What a transcription reply heard: the segments' text joined, the mean of their
/// `avg_logprob` and the highest `no_speech_prob` (each when the provider gave it).
#[must_use]
pub fn heard_from_reply(reply: &egress::TranscriptionReply) -> Heard {
    let text = reply
        .segments
        .iter()
        .map(|s| s.text.trim())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let logprobs: Vec<f64> = reply
        .segments
        .iter()
        .filter_map(|s| s.avg_logprob.map(f64::from))
        .collect();
    let avg_logprob = (!logprobs.is_empty()).then(|| {
        #[allow(clippy::cast_precision_loss)]
        let n = logprobs.len() as f64;
        logprobs.iter().sum::<f64>() / n
    });
    let no_speech_prob = reply
        .segments
        .iter()
        .filter_map(|s| s.no_speech_prob.map(f64::from))
        .reduce(f64::max);
    Heard {
        text,
        avg_logprob,
        no_speech_prob,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// An ear that answers from a list and remembers the prompts it was given.
    struct Scripted {
        answers: Mutex<Vec<&'static str>>,
        prompts: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl Ear for Scripted {
        async fn hear(&self, _: &Bytes, prompt: &str) -> Result<Heard, EgressError> {
            self.prompts.lock().unwrap().push(prompt.to_owned());
            let text = self.answers.lock().unwrap().remove(0);
            Ok(Heard {
                text: text.to_owned(),
                avg_logprob: Some(-0.1),
                no_speech_prob: Some(0.01),
            })
        }
    }

    fn ear(answers: Vec<&'static str>) -> Scripted {
        Scripted {
            answers: Mutex::new(answers),
            prompts: Mutex::new(Vec::new()),
        }
    }

    #[tokio::test]
    async fn a_charting_final_is_heard_twice_and_held_when_the_readings_disagree() {
        let session = Session::from_ctx(&serde_json::json!({})).unwrap();
        let wav = Bytes::from_static(b"RIFF");
        let agree = ear(vec!["Jump to tooth 14.", "Jump to tooth 14."]);
        let r = recognize(&agree, &session, &wav, &Policy::default())
            .await
            .unwrap();
        assert_eq!(r.readings.len(), 2);
        assert!(!r.voice.held(), "{:?}", r.voice);
        assert_eq!(agree.prompts.lock().unwrap()[1], check_prompt());

        // Held: a third reading (a prompt with neither number) agrees with neither.
        let disagree = ear(vec![
            "Jump to tooth 14.",
            "Jump to tooth 15.",
            "Jump to tooth 16.",
        ]);
        let r = recognize(&disagree, &session, &wav, &Policy::default())
            .await
            .unwrap();
        assert!(r.voice.held());
        assert_eq!(r.readings.len(), 3);
        let third = disagree.prompts.lock().unwrap()[2].clone();
        assert!(!third.contains("teen"), "{third}");

        let chatter = ear(vec!["Good morning, how are you?"]);
        let r = recognize(&chatter, &session, &wav, &Policy::default())
            .await
            .unwrap();
        assert_eq!(r.readings.len(), 1, "nothing to chart: no second reading");
    }

    #[tokio::test]
    async fn a_held_final_is_heard_a_third_time_and_charted_only_when_that_reading_agrees() {
        let session = Session::from_ctx(&serde_json::json!({})).unwrap();
        let wav = Bytes::from_static(b"RIFF");
        let agree = ear(vec![
            "Jump to tooth twenty.",
            "Jump to tooth wobble.",
            "Jump to tooth 20.",
        ]);
        let r = recognize(&agree, &session, &wav, &Policy::default())
            .await
            .unwrap();
        assert_eq!(r.readings.len(), 3);
        assert!(!r.voice.held(), "{:?}", r.voice);
        let third = agree.prompts.lock().unwrap()[2].clone();
        assert!(!third.contains("twenty"), "{third}");

        let other = ear(vec![
            "Jump to tooth twenty.",
            "Jump to tooth wobble.",
            "Jump to tooth eighteen.",
        ]);
        let r = recognize(&other, &session, &wav, &Policy::default())
            .await
            .unwrap();
        assert_eq!(r.readings.len(), 3);
        assert!(r.voice.held());
        assert_eq!(r.voice.text, "jump to tooth twenty");
    }

    #[test]
    fn a_reply_is_read_as_one_heard_text() {
        let seg = |t: &str, lp: f32, ns: f32| egress::Segment {
            start_ms: 0,
            end_ms: 1,
            text: t.to_owned(),
            speaker: None,
            no_speech_prob: Some(ns),
            avg_logprob: Some(lp),
        };
        let reply = egress::TranscriptionReply {
            segments: vec![seg(" Three two", -0.2, 0.1), seg("three. ", -0.4, 0.3)],
            usage: egress::Usage::default(),
        };
        let h = heard_from_reply(&reply);
        assert_eq!(h.text, "Three two three.");
        assert!((h.avg_logprob.unwrap() + 0.3).abs() < 1e-6);
        assert!((h.no_speech_prob.unwrap() - 0.3).abs() < 1e-6);
    }
}

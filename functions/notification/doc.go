// Package notification sends the order confirmation email for every order
// event, effectively once: a redelivered event (same order) sends no second
// email. A transient failure asks for redelivery (RETRY); a malformed event
// is dropped (DROP) to the dead-letter topic, whose handler records it; a
// valid event that daprd dead-lettered because it could not deliver it in
// time is sent from there after all, or, if the email sink is still down,
// kept in the state store and sent by the email-sweep cron (SendUnsent).
package notification

/* Voice notes for the speech tests and benchmark: a phrase said by espeak-ng
 * and encoded by opusenc, as WhatsApp's voice notes are Ogg/Opus. */
#ifndef SOUK_TEST_VOICE_NOTE_H
#define SOUK_TEST_VOICE_NOTE_H

/* Makes dir/name.ogg (through dir/name.wav) saying text (no single quote in
 * it). 0, or the failed command's status (the command printed to stderr). */
int voice_note_say(const char *dir, const char *name, const char *text);

#endif

/* Voice notes made with espeak-ng and opusenc (see voice_note.h). */
#include "voice_note.h"

#include <stdio.h>
#include <stdlib.h>

int voice_note_say(const char *dir, const char *name, const char *text)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "espeak-ng -v en-us -s 150 -w %s/%s.wav '%s' && opusenc --quiet %s/%s.wav %s/%s.ogg",
             dir, name, text, dir, name, dir, name);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "failed (%d): %s\n", rc, cmd);
    return rc;
}

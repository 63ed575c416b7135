/* Who is calling; see include/sluice/identity.h. */
#include "sluice/identity.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

/* Longest Proxy-Authorization value looked at. */
#define IDENTITY_MAX_AUTH 512

/* "listener", "proxy-user" or "none". */
const char *identity_source_str(enum identity_source s)
{
    return s == IDENTITY_LISTENER ? "listener" : s == IDENTITY_PROXY_USER ? "proxy-user" : "none";
}

/*
 * Decodes the user name of a Basic credential into user (capacity cap).  Returns false
 * when the value is not a well-formed Basic credential.  The password is never copied.
 */
static bool identity_basic_user(const char *v, size_t len, char *user, size_t cap)
{
    unsigned char decoded[IDENTITY_MAX_AUTH];
    size_t i = 0, b64len, pad = 0;
    int n;
    const unsigned char *colon;
    bool ok;

    while (i < len && (v[i] == ' ' || v[i] == '\t'))
        i++;
    if (len - i < 6 || strncasecmp(v + i, "Basic", 5) != 0 || v[i + 5] != ' ')
        return false;
    i += 6;
    while (i < len && v[i] == ' ')
        i++;
    b64len = len - i;
    if (b64len == 0 || b64len % 4 != 0 || b64len > sizeof(decoded))
        return false;
    n = EVP_DecodeBlock(decoded, (const unsigned char *)v + i, (int)b64len);
    if (n < 0)
        return false;
    if (v[i + b64len - 1] == '=')
        pad++;
    if (v[i + b64len - 2] == '=')
        pad++;
    n -= (int)pad;
    colon = n > 0 ? memchr(decoded, ':', (size_t)n) : NULL;
    ok = colon != NULL && colon != decoded && (size_t)(colon - decoded) < cap;
    if (ok) {
        memcpy(user, decoded, (size_t)(colon - decoded));
        user[colon - decoded] = '\0';
    }
    OPENSSL_cleanse(decoded, sizeof(decoded)); /* the password was in there */
    return ok;
}

/* Names the tool of a request. */
void identity_resolve(const struct policy_snapshot *p, const char *listener_tool,
                      const char *proxy_auth, size_t len, struct identity *out)
{
    const struct policy_tool *t;
    char user[IDENTITY_USER_MAX];

    out->tool = NULL;
    out->source = IDENTITY_NONE;
    if (proxy_auth == NULL || !identity_basic_user(proxy_auth, len, user, sizeof(user)))
        user[0] = '\0';
    memcpy(out->user, user, strlen(user) + 1);
    if (listener_tool != NULL && listener_tool[0] != '\0' &&
        (t = policy_find_tool(p, listener_tool)) != NULL) {
        out->tool = t;
        out->source = IDENTITY_LISTENER;
        return;
    }
    if (user[0] != '\0' && (t = policy_find_tool(p, user)) != NULL) {
        out->tool = t;
        out->source = IDENTITY_PROXY_USER;
    }
}

/* The key an upstream connection is filed under: tool and user. */
void identity_owner_key(const struct identity *id, char *out, size_t cap)
{
    snprintf(out, cap, "%s\n%s", id->tool != NULL ? id->tool->id : "", id->user);
}

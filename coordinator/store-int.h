/* Inside the store (store.c and its back-ends): the head every back-end's
 * store begins with, and the words each state is stored and shown as. */
#ifndef VZ_COORD_STORE_INT_H
#define VZ_COORD_STORE_INT_H

#include "store.h"

/* A back-end embeds this first and sets ops in its open. */
struct pool_store {
	const struct pool_store_ops *ops;
};

enum pool_word_kind {
	POOL_WORD_HOST_STATE,
	POOL_WORD_HOST_MAINT,
	POOL_WORD_DRAIN_STATE,
	POOL_WORD_MEMBER_STATUS,
	POOL_WORD_MOVE_MODE,
	POOL_WORD_MOVE_STATE,
};

/* The word for value v of kind k, or NULL when v is out of range. */
const char *pool_word(enum pool_word_kind k, int v);
/* The value of word in kind k, or -EINVAL. */
int pool_word_parse(enum pool_word_kind k, const char *word);

#endif

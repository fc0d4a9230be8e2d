/* SPDX-License-Identifier: MIT */
/*
 * The one list of lib/: an intrusive singly linked list with a tail, so
 * that appending, taking the first and moving a whole list onto the end
 * of another are O(1). EVFN__LIST(name, type, link) declares struct name
 * (its head and tail) and the functions name_push(), name_pop(),
 * name_append(), name_empty() and name_take_if() for elements of type
 * linked through their member link. An element is on at most one list
 * through a given link at a time. Nothing is allocated; a zeroed struct
 * is an empty list. Which lock guards a list is its owner's business.
 */
#ifndef EVFN_LIST_INTERNAL_H
#define EVFN_LIST_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#define EVFN__LIST(name, type, link)                                         \
	struct name {                                                        \
		type *head, *tail;                                           \
	};                                                                   \
                                                                             \
	__attribute__((unused)) static inline bool name##_empty(             \
		const struct name *l)                                        \
	{                                                                    \
		return l->head == NULL;                                      \
	}                                                                    \
                                                                             \
	/* Appends x. */                                                     \
	__attribute__((unused)) static inline void name##_push(              \
		struct name *l, type *x)                                     \
	{                                                                    \
		x->link = NULL;                                              \
		if (l->tail)                                                 \
			l->tail->link = x;                                   \
		else                                                         \
			l->head = x;                                         \
		l->tail = x;                                                 \
	}                                                                    \
                                                                             \
	/* Takes the first element; NULL when empty. */                      \
	__attribute__((unused)) static inline type *name##_pop(              \
		struct name *l)                                              \
	{                                                                    \
		type *x = l->head;                                           \
		if (x) {                                                     \
			l->head = x->link;                                   \
			if (!l->head)                                        \
				l->tail = NULL;                              \
			x->link = NULL;                                      \
		}                                                            \
		return x;                                                    \
	}                                                                    \
                                                                             \
	/* Moves every element of from onto the end of l, in order. */       \
	__attribute__((unused)) static inline void name##_append(            \
		struct name *l, struct name *from)                           \
	{                                                                    \
		if (!from->head)                                             \
			return;                                              \
		if (l->tail)                                                 \
			l->tail->link = from->head;                          \
		else                                                         \
			l->head = from->head;                                \
		l->tail = from->tail;                                        \
		from->head = from->tail = NULL;                              \
	}                                                                    \
                                                                             \
	/* Moves the elements that match(x, arg) accepts (all for a NULL     \
	 * match) onto the end of out, keeping the order of both lists;      \
	 * returns how many. */                                              \
	__attribute__((unused)) static inline size_t name##_take_if(         \
		struct name *l, bool (*match)(const type *, void *),         \
		void *arg, struct name *out)                                 \
	{                                                                    \
		struct name kept = {NULL, NULL};                             \
		size_t n = 0;                                                \
		type *x;                                                     \
		while ((x = name##_pop(l))) {                                \
			if (!match || match(x, arg)) {                       \
				name##_push(out, x);                         \
				n++;                                         \
			} else {                                             \
				name##_push(&kept, x);                       \
			}                                                    \
		}                                                            \
		*l = kept;                                                   \
		return n;                                                    \
	}

#endif /* EVFN_LIST_INTERNAL_H */

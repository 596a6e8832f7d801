// Package natsbroker is a wsgate.Broker over NATS, for a gateway of many
// nodes: publications from any node reach the subscribers of every node,
// history and recovery work across nodes, and the server API's node-wide
// operations (info, disconnect, unsubscribe, subscribe) reach every node.
//
// Live publications travel on core NATS, on one subject per channel
// (prefix.l.<channel in base64url>); a node subscribes to it while the
// channel has local subscribers, so NATS carries one message per node
// per publication. History lives in one JetStream stream (subjects
// prefix.h.>, per-subject limits for the size, MaxAge for the age). Each
// append names the stream sequence of the channel's last message
// (Nats-Expected-Last-Subject-Sequence) and carries the next offset in a
// header; an append that lost the race to another node is refused by
// JetStream and retried on the new last message, so that a channel's
// offsets go up by exactly one per publication whichever nodes publish.
// The epoch is chosen with a channel's first message and copied from
// message to message: it changes only when all of them are gone. Node
// heartbeats and API commands travel on prefix.ctl.info and
// prefix.ctl.cmd.
//
// While NATS is down, Ready returns an error, publications with history
// fail, those without are still delivered to this node's subscribers,
// and nothing queues; when it is back the subscriptions are remade and
// every subscribed channel is caught up from history.
//
// DESIGN.md in this directory gives the subjects, the stream
// configuration, the failure modes and the measured cost.
package natsbroker

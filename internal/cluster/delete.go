package cluster

// MaxDeleteBlocks is the most blocks one DeleteRequest may name; a sender
// answers 413 to a longer one.
const MaxDeleteBlocks = 20_000

// DeleteRequest asks a sender to delete blocks from its mass storage and
// RAM (POST /internal/v1/delete): the origin's writer sends it for the
// fragments its retention pruned and for copies a sender holds but does
// not own. Track headers are never deleted.
type DeleteRequest struct {
	Blocks []BlockID `json:"blocks"`
}

// DeleteResult counts what a DeleteRequest did.
type DeleteResult struct {
	// Deleted blocks are gone from mass storage and RAM.
	Deleted int `json:"deleted"`
	// Absent blocks were not held.
	Absent int `json:"absent"`
	// Deferred blocks are gone from mass storage but pinned: their RAM
	// copy serves the sessions that pinned them until the last pin goes,
	// and takes no new pin.
	Deferred int `json:"deferred"`
}

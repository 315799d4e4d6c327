module raft

go 1.26

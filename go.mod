module github.com/sluice-media/sluice

go 1.26.8

require github.com/Eyevinn/mp4ff v0.56.0
